using System.Text.RegularExpressions;

namespace CriShim.Runtime.Images;

/// <summary>
/// A normalized image reference as the kubelet and crictl use them: <c>busybox</c> is
/// <c>docker.io/library/busybox:latest</c>. A reference with a digest is pulled by that digest;
/// a tag next to it is kept only for display, as Docker does.
/// </summary>
public sealed partial record ImageReference(string Registry, string Repository, string? Tag, string? Digest)
{
    public const string DockerHub = "docker.io";
    private const int MaxNameLength = 255;

    /// <summary>registry/repository, e.g. docker.io/library/busybox.</summary>
    public string Name => $"{Registry}/{Repository}";

    /// <summary>What the registry's manifest endpoint is asked for: the digest when there is one.</summary>
    public string ManifestReference => Digest ?? Tag!;

    /// <summary>name:tag as recorded in RepoTags; null for references pinned by digest.</summary>
    public string? RepoTag => Digest is null ? $"{Name}:{Tag}" : null;

    public string RepoDigest(string manifestDigest) => $"{Name}@{manifestDigest}";

    public override string ToString() =>
        Name + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest);

    /// <summary>Parses and normalizes; throws InvalidRequestException naming the reference.</summary>
    public static ImageReference Parse(string reference) =>
        TryParse(reference, out var parsed, out string? error) ? parsed : throw new InvalidRequestException($"invalid image reference \"{reference}\": {error}");

    public static bool TryParse(string reference, out ImageReference parsed, out string? error)
    {
        parsed = null!;
        error = null;
        if (string.IsNullOrWhiteSpace(reference))
        {
            error = "it is empty";
            return false;
        }
        string rest = reference;
        string? digest = null;
        int at = rest.IndexOf('@');
        if (at >= 0)
        {
            digest = rest[(at + 1)..];
            rest = rest[..at];
            if (!ContentDigest.IsValid(digest))
            {
                error = $"\"{digest}\" is not a valid digest (expected sha256:<64 hex digits>)";
                return false;
            }
        }
        string? tag = null;
        int lastSlash = rest.LastIndexOf('/');
        int colon = rest.LastIndexOf(':');
        if (colon > lastSlash)
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!TagPattern().IsMatch(tag))
            {
                error = $"\"{tag}\" is not a valid tag";
                return false;
            }
        }
        string registry = DockerHub;
        string repository = rest;
        int firstSlash = rest.IndexOf('/');
        if (firstSlash >= 0 && LooksLikeRegistry(rest[..firstSlash]))
        {
            registry = rest[..firstSlash];
            repository = rest[(firstSlash + 1)..];
            if (!RegistryPattern().IsMatch(registry))
            {
                error = $"\"{registry}\" is not a valid registry host";
                return false;
            }
        }
        if (registry is "index.docker.io" or "registry-1.docker.io") registry = DockerHub;
        if (registry == DockerHub && !repository.Contains('/')) repository = "library/" + repository;
        if (!RepositoryPattern().IsMatch(repository))
        {
            error = $"\"{repository}\" is not a valid repository name (lower-case letters, digits and separators)";
            return false;
        }
        if (registry.Length + 1 + repository.Length > MaxNameLength)
        {
            error = $"the name is longer than {MaxNameLength} characters";
            return false;
        }
        parsed = new ImageReference(registry, repository, tag ?? (digest is null ? "latest" : null), digest);
        return true;
    }

    // As in distribution/reference: the first component is a registry when it has a dot or a port, or is localhost.
    private static bool LooksLikeRegistry(string component) =>
        component.Contains('.') || component.Contains(':') || component == "localhost" || component.Any(char.IsUpper);

    [GeneratedRegex(@"^[\w][\w.-]{0,127}\z")]
    private static partial Regex TagPattern();

    [GeneratedRegex(@"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?\z")]
    private static partial Regex RegistryPattern();

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\z")]
    private static partial Regex RepositoryPattern();
}
