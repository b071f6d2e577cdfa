using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// A CheckpointPodRequest checked before anything is looked up or frozen: an absolute, existing, empty
/// output directory, a non-empty list of distinct container ids, and only options this runtime knows.
/// </summary>
public sealed record PodCheckpointPlan(string OutputPath, IReadOnlyList<string> ContainerIds, CriuDumpOptions DumpOptions)
{
    /// <summary>The options a caller may set, "true" or "false"; each overrides the checkpoint.* key of the same name.</summary>
    public const string TcpEstablishedOption = "tcp_established";
    public const string ExtUnixSkOption = "ext_unix_sk";

    /// <exception cref="InvalidRequestException">The request is malformed (INVALID_ARGUMENT).</exception>
    public static PodCheckpointPlan From(CheckpointPodRequest request, CriuDumpOptions defaults)
    {
        ValidateOutputPath(request.OutputPath);
        if (request.ContainerIds.Count == 0) throw new InvalidRequestException("container_ids must name at least one running container of the pod");
        if (request.ContainerIds.Any(string.IsNullOrWhiteSpace)) throw new InvalidRequestException("container_ids must not contain an empty id");
        if (request.ContainerIds.GroupBy(id => id).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
        {
            throw new InvalidRequestException($"container_ids names container \"{duplicate.Key}\" more than once");
        }
        return new PodCheckpointPlan(request.OutputPath, [.. request.ContainerIds], ParseOptions(request.Options, defaults));
    }

    private static void ValidateOutputPath(string outputPath)
    {
        if (string.IsNullOrWhiteSpace(outputPath)) throw new InvalidRequestException("output_path must name an existing, empty directory");
        if (!Path.IsPathRooted(outputPath)) throw new InvalidRequestException($"output_path \"{outputPath}\" must be an absolute path");
        if (!Directory.Exists(outputPath)) throw new InvalidRequestException($"output_path \"{outputPath}\" is not an existing directory");
        if (Directory.EnumerateFileSystemEntries(outputPath).Any()) throw new InvalidRequestException($"output_path \"{outputPath}\" is not empty");
    }

    private static CriuDumpOptions ParseOptions(IDictionary<string, string> options, CriuDumpOptions defaults)
    {
        var result = defaults;
        foreach (var (key, value) in options.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            if (key is not (TcpEstablishedOption or ExtUnixSkOption))
            {
                throw new InvalidRequestException($"unknown option \"{key}\": CheckpointPod accepts {TcpEstablishedOption} and {ExtUnixSkOption}");
            }
            if (!bool.TryParse(value, out bool enabled)) throw new InvalidRequestException($"option \"{key}\" must be \"true\" or \"false\", not \"{value}\"");
            result = key == TcpEstablishedOption ? result with { TcpEstablished = enabled } : result with { ExtUnixSk = enabled };
        }
        return result;
    }

    /// <summary>
    /// The archive's file name in the output directory: "&lt;container name&gt;.tar". A name that is not a
    /// plain file name is refused rather than escaping the directory.
    /// </summary>
    public static string ArchiveName(string containerName)
    {
        if (containerName.Length == 0 || containerName is "." or ".." || containerName.IndexOfAny(['/', '\0']) >= 0)
        {
            throw new InvalidRequestException($"container name \"{containerName}\" cannot name a file in the checkpoint directory");
        }
        return containerName + ".tar";
    }
}
