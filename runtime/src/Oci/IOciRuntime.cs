using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Oci;

/// <summary>
/// One OCI runtime handler (runc or crun) as the services see it: the seam that lets lifecycle and
/// checkpoint code run over a fake in unit tests. <see cref="OciRuntime"/> drives the real binary.
/// </summary>
public interface IOciRuntime
{
    string Handler { get; }
    string BinaryPath { get; }
    /// <summary>The runtime's own state directory (its --root).</summary>
    string Root { get; }

    /// <summary>What `--version` says: the first line, and whether the build can checkpoint.</summary>
    Task<(string Version, bool CanCheckpoint)> VersionAsync(CancellationToken cancellationToken);

    /// <summary>What the runtime supports, asked once.</summary>
    Task<OciFeatures> FeaturesAsync();

    /// <summary>The runtime's own view of the container (`state`); null when it does not know the container.</summary>
    Task<OciState?> StateAsync(string id, CancellationToken cancellationToken);

    /// <summary>Runs the created container's process (the monitor did `create`).</summary>
    Task StartAsync(string id, CancellationToken cancellationToken);

    /// <summary>Signals the container's init process, or every process with <paramref name="all"/>;
    /// false when the container is already gone or stopped.</summary>
    Task<bool> KillAsync(string id, int signal, bool all, CancellationToken cancellationToken);

    /// <summary>Deletes the runtime's state of the container, killing it if needed; a no-op when unknown.</summary>
    Task DeleteAsync(string id, CancellationToken cancellationToken);

    /// <summary>Applies a linux.resources JSON object to the live container.</summary>
    Task UpdateResourcesAsync(string id, string resourcesJson, CancellationToken cancellationToken);

    /// <summary>Runs a command in the container and collects up to <paramref name="outputLimit"/> bytes of each of its stdout and stderr.</summary>
    Task<CapturedOutput> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, int outputLimit, string pidFile, CancellationToken cancellationToken);

    /// <summary>
    /// Runs a command in the container with the caller's stdio until it exits (the streaming Exec): pipes, or a
    /// terminal that follows the caller's resizes. Cancellation kills the exec'd process. Returns its exit code.
    /// </summary>
    Task<int> ExecAttachedAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, string pidFile, CancellationToken cancellationToken);

    /// <summary>Freezes every process of the container (cgroup freezer).</summary>
    Task PauseAsync(string id, CancellationToken cancellationToken);

    /// <summary>Thaws the container; a no-op when it is not paused.</summary>
    Task ResumeAsync(string id, CancellationToken cancellationToken);

    /// <summary>Dumps the container with CRIU and leaves it running.</summary>
    Task CheckpointAsync(string id, string imagePath, string workPath, IEnumerable<string> criuOptions, TimeSpan limit, CancellationToken cancellationToken);
}
