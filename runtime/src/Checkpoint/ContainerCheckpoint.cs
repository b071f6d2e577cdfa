using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// CheckpointContainer: CRIU dumps a running container through its OCI runtime into a root-only tar.
/// The container is frozen only for the dump and the rootfs-diff capture, the archive is written after
/// it resumes, the request's timeout is honoured in every phase, and whatever happens the container is
/// resumed and no partial file is left (see <see cref="CheckpointPipeline"/>).
/// </summary>
public sealed class ContainerCheckpoint(
    CheckpointConfig checkpoint,
    ContainerLookup containers,
    CheckpointPipeline pipeline,
    CheckpointRetention retention,
    ILogger<ContainerCheckpoint> logger)
{
    private const string Method = "CheckpointContainer";

    /// <summary>Checkpoints <paramref name="containerId"/> to <paramref name="location"/>.</summary>
    /// <param name="timeoutSeconds">The request's timeout; 0 means the configured default.</param>
    /// <param name="callDeadline">The gRPC deadline (DateTime.MaxValue when the client set none).</param>
    /// <param name="cancellationToken">The call's token: cancelled at the gRPC deadline or when the client goes away.</param>
    public async Task<CheckpointResult> CheckpointAsync(string containerId, string location, long timeoutSeconds, DateTime callDeadline, CancellationToken cancellationToken)
    {
        ContainerRecord? record = null;
        var results = await pipeline.RunAsync(Method, () =>
        {
            ValidateLocation(location);
            if (timeoutSeconds < 0) throw new InvalidRequestException("timeout must not be negative");
            var limit = RequestTimeout.FromSeconds(timeoutSeconds > 0 ? timeoutSeconds : checkpoint.DefaultTimeoutSeconds, "timeout");
            record = containers.Get(containerId);
            return new CheckpointJob($"container {record.Id}", [new CheckpointTarget(record, location)], CriuDumpOptions.From(checkpoint),
                limit, callDeadline);
        }, cancellationToken);
        var result = results[0];
        logger.LogInformation("checkpointed container {Id} to {Location}: {Bytes} bytes in {Total:0.000} s, frozen {Frozen:0.000} s",
            result.ContainerId, location, result.Bytes, result.Total.TotalSeconds, result.Frozen.TotalSeconds);
        // The record resolved above: the container may be removed the moment its checkpoint is done.
        retention.AfterCheckpoint(record!, location);
        return result;
    }

    private static void ValidateLocation(string location)
    {
        if (string.IsNullOrWhiteSpace(location)) throw new InvalidRequestException("location must name the archive file to write");
        if (!Path.IsPathRooted(location)) throw new InvalidRequestException($"location \"{location}\" must be an absolute path");
        if (location.Contains('\0')) throw new InvalidRequestException("location must not contain a NUL character");
        if (location.EndsWith('/') || Directory.Exists(location))
        {
            throw new InvalidRequestException($"location \"{location}\" is a directory; it must name the archive file to write");
        }
    }
}
