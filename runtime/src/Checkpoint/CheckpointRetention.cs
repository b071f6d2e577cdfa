using System.Globalization;
using System.Text.RegularExpressions;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// Opt-in retention (checkpoint.keep_per_container = N): after a CheckpointContainer wrote a
/// kubelet-named archive, checkpoint-&lt;pod&gt;_&lt;namespace&gt;-&lt;container&gt;-&lt;RFC3339 time&gt;.tar,
/// the newest N such archives of that container in that directory stay and older ones are removed.
/// Only regular files whose whole name is that container's prefix plus an RFC3339 time and ".tar" are
/// candidates: other containers' archives, other names, directories and symlinks are never touched.
/// Newest is by the time in the name (the kubelet's clock), and the archive just written always stays.
/// </summary>
public sealed partial class CheckpointRetention(
    CheckpointConfig checkpoint, PodSandboxService sandboxes, ILogger<CheckpointRetention> logger)
{
    [GeneratedRegex(@"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")]
    private static partial Regex Rfc3339();

    /// <summary>The kubelet's name up to the time: checkpoint-&lt;pod&gt;_&lt;namespace&gt;-&lt;container&gt;-.</summary>
    public static string ArchivePrefix(string pod, string podNamespace, string container) => $"checkpoint-{pod}_{podNamespace}-{container}-";

    /// <summary>The time in <paramref name="fileName"/> when it is this prefix, an RFC3339 time and ".tar", else null.</summary>
    public static DateTimeOffset? ArchiveTime(string fileName, string prefix)
    {
        if (!fileName.StartsWith(prefix, StringComparison.Ordinal) || !fileName.EndsWith(".tar", StringComparison.Ordinal)) return null;
        var match = Rfc3339().Match(fileName[prefix.Length..^".tar".Length]);
        if (!match.Success) return null;
        // .NET parses at most 7 fractional digits; Go's RFC3339Nano may write 9.
        string fraction = match.Groups[2].Success ? "." + match.Groups[2].Value.PadRight(7, '0')[..7] : "";
        string zone = match.Groups[3].Value == "Z" ? "+00:00" : match.Groups[3].Value;
        return DateTimeOffset.TryParseExact(match.Groups[1].Value + fraction + zone,
            fraction.Length > 0 ? "yyyy-MM-dd'T'HH:mm:ss.fffffffzzz" : "yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture, DateTimeStyles.None, out var time)
            ? time
            : null;
    }

    /// <summary>The names to remove: this container's archives beyond the newest <paramref name="keep"/>, never <paramref name="justWritten"/>.</summary>
    public static List<string> Expired(IEnumerable<string> fileNames, string prefix, string justWritten, int keep)
    {
        var archives = fileNames.Select(name => (Name: name, Time: ArchiveTime(name, prefix)))
            .Where(a => a.Time is not null && a.Name != justWritten)
            .OrderByDescending(a => a.Time).ThenByDescending(a => a.Name, StringComparer.Ordinal)
            .Select(a => a.Name).ToList();
        return archives.Skip(Math.Max(0, keep - 1)).ToList();
    }

    /// <summary>
    /// Applies retention after <paramref name="container"/> (the record the checkpoint resolved) was checkpointed to
    /// <paramref name="location"/>. Any failure, its pod removed meanwhile included, is logged: the checkpoint itself succeeded.
    /// </summary>
    public void AfterCheckpoint(ContainerRecord container, string location)
    {
        int keep = checkpoint.KeepPerContainer;
        if (keep <= 0) return;
        string dir = Path.GetDirectoryName(location)!;
        try
        {
            var pod = sandboxes.Get(container.PodId).ConfigMessage.Metadata;
            string prefix = ArchivePrefix(pod.Name, pod.Namespace, container.ConfigMessage.Metadata.Name);
            string justWritten = Path.GetFileName(location);
            if (ArchiveTime(justWritten, prefix) is null) return;
            var regularFiles = new DirectoryInfo(dir).EnumerateFiles()
                .Where(f => f.LinkTarget is null && (f.Attributes & FileAttributes.ReparsePoint) == 0).Select(f => f.Name);
            foreach (string name in Expired(regularFiles, prefix, justWritten, keep))
            {
                File.Delete(Path.Combine(dir, name));
                logger.LogInformation("checkpoint retention: removed {Archive} (keep_per_container = {Keep})", Path.Combine(dir, name), keep);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotFoundException)
        {
            logger.LogWarning("checkpoint retention of container {Id} in {Dir} failed: {Error}", container.Id, dir, e.Message);
        }
    }
}
