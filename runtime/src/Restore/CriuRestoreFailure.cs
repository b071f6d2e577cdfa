using CriShim.Runtime.Checkpoint;

namespace CriShim.Runtime.Restore;

/// <summary>
/// What a failed `runc|crun restore` tells the caller, from CRIU's restore.log: FAILED_PRECONDITION when the
/// images cannot be restored on this node (their format or version, architecture or CPU features) or into
/// this pod (a socket's address it does not have), with CRIU's line; INTERNAL with the log's excerpt otherwise.
/// </summary>
public static class CriuRestoreFailure
{
    /// <param name="restoreLog">CRIU's log (enumerated more than once); null when CRIU wrote none.</param>
    /// <param name="fallback">What the runtime or conmon said, when the log says nothing.</param>
    public static Exception Of(string containerId, string archive, IEnumerable<string>? restoreLog, string fallback)
    {
        string failed = $"CRIU could not restore container {containerId} from {archive}; the container was removed";
        if (restoreLog is null) return new InvalidOperationException($"{failed}: {fallback}");
        if (CriuImageCompatibility.IncompatibilityIn(restoreLog) is { } incompatible)
        {
            return new WrongStateException($"{failed}: this node cannot restore its images: {incompatible}");
        }
        if (CheckpointedConnections.AddressFailureIn(restoreLog) is { } unbindable)
        {
            return new WrongStateException($"{failed}: {unbindable}: {CheckpointedConnections.Advice}");
        }
        string excerpt = Criu.DumpLogExcerpt(restoreLog);
        return new InvalidOperationException($"{failed}: {(excerpt.Length > 0 ? excerpt : fallback)}");
    }

    /// <summary><see cref="Of(string, string, IEnumerable{string}?, string)"/> for the restore.log at <paramref name="logPath"/>.</summary>
    public static Exception Of(string containerId, string archive, string logPath, string fallback) =>
        Of(containerId, archive, File.Exists(logPath) ? File.ReadLines(logPath) : null, fallback);
}
