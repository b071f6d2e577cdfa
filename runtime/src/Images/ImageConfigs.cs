using System.Runtime.InteropServices;
using System.Text.Json;

namespace CriShim.Runtime.Images;

/// <summary>Reading manifests and image configs: format checks, platform choice, the runtime parts of a config.</summary>
public static class ImageConfigs
{
    public static ImageConfigDocument Parse(byte[] config)
    {
        try
        {
            return JsonSerializer.Deserialize(config, ImageJsonContext.Default.ImageConfigDocument)
                ?? throw new InvalidDataException("the image config is null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"the image config is not valid JSON: {e.Message}");
        }
    }

    public static ImageRuntimeConfig ToRuntimeConfig(ImageConfigDocument document)
    {
        var config = document.Config ?? new ImageExecutionConfig();
        return new ImageRuntimeConfig(
            config.Entrypoint ?? [],
            config.Cmd ?? [],
            config.Env ?? [],
            config.WorkingDir ?? "",
            config.User ?? "",
            config.StopSignal ?? "",
            config.Volumes?.Keys.Order(StringComparer.Ordinal).ToList() ?? [],
            config.Labels ?? []);
    }

    /// <summary>
    /// The CRI's split of an image's User: a numeric user ("1000", "1000:1000") is a uid, anything
    /// else a user name; empty means neither.
    /// </summary>
    public static (long? Uid, string Username) SplitUser(string user)
    {
        string name = user.Split(':', 2)[0];
        if (name.Length == 0) return (null, "");
        return long.TryParse(name, out long uid) ? (uid, "") : (null, name);
    }

    /// <summary>A manifest or index, with schema 1 and unknown formats refused by name.</summary>
    public static (ManifestDocument Document, bool IsIndex) ParseManifest(FetchedManifest fetched, ImageReference reference)
    {
        ManifestDocument document;
        try
        {
            document = JsonSerializer.Deserialize(fetched.Content, ImageJsonContext.Default.ManifestDocument)
                ?? throw new InvalidDataException("null manifest");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"manifest {fetched.Digest} of {reference} is not valid JSON: {e.Message}");
        }
        string? mediaType = document.MediaType ?? fetched.MediaType;
        if (document.SchemaVersion == 1 || mediaType is MediaTypes.DockerSchema1 or MediaTypes.DockerSchema1Signed)
        {
            throw new RegistryException(
                $"image {reference} has a Docker schema 1 manifest, which is deprecated and not supported (nor by containerd 2 or Docker 28); push it again with a current client");
        }
        if (MediaTypes.IsIndex(mediaType) || (document.Manifests is not null && document.Layers is null)) return (document, true);
        if (document.Config is null || document.Layers is null)
        {
            throw new RegistryException($"manifest {fetched.Digest} of {reference} has media type {mediaType ?? "(none)"} and neither layers nor manifests");
        }
        return (document, false);
    }

    /// <summary>The index entry for this node's platform: linux and its architecture, an exact variant preferred.</summary>
    public static Descriptor SelectPlatform(ManifestDocument index, ImageReference reference)
    {
        var (architecture, variant) = NodePlatform();
        var candidates = (index.Manifests ?? [])
            .Where(m => m.Platform is { Os: "linux" } p && p.Architecture == architecture && (p.Variant is null || p.Variant == variant || variant is null))
            .OrderBy(m => m.Platform!.Variant == variant ? 0 : 1)
            .ToList();
        if (candidates.Count == 0)
        {
            string offered = string.Join(", ", (index.Manifests ?? []).Select(m => m.Platform is { } p ? $"{p.Os}/{p.Architecture}{(p.Variant is null ? "" : "/" + p.Variant)}" : "unknown").Distinct());
            throw new NotFoundException($"image {reference} has no manifest for linux/{architecture}; it offers: {(offered.Length == 0 ? "nothing" : offered)}");
        }
        return candidates[0];
    }

    /// <summary>The OCI name of this machine's architecture, and the variant an index would list for it.</summary>
    public static (string Architecture, string? Variant) NodePlatform() => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => ("amd64", null),
        Architecture.Arm64 => ("arm64", "v8"),
        Architecture.Arm => ("arm", "v7"),
        Architecture.X86 => ("386", null),
        Architecture.S390x => ("s390x", null),
        Architecture.Ppc64le => ("ppc64le", null),
        Architecture.RiscV64 => ("riscv64", null),
        var other => (other.ToString().ToLowerInvariant(), null),
    };
}
