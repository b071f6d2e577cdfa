using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Oci;

/// <summary>How a container's process ended, as its monitor recorded it.</summary>
public sealed record MonitoredExit(int ExitCode, bool OomKilled, DateTime AtUtc);

/// <summary>
/// The per-container monitor (conmon) as the services see it: it creates the container, outlives the
/// daemon, records the exit, holds the attach socket and reopens the log. Everything the daemon knows
/// about conmon's files sits behind this seam; <see cref="Conmon"/> is the real one.
/// </summary>
public interface IContainerMonitor
{
    /// <summary>Creates the container under a new monitor; returns the container's init pid.</summary>
    Task<int> CreateAsync(ConmonLaunch launch, CancellationToken cancellationToken);

    /// <summary>The monitor of the container created from <paramref name="bundleDir"/>, while it runs; null once it is gone.</summary>
    ProcessIdentity? MonitorOf(string bundleDir);

    /// <summary>The exit the monitor recorded for the container, or null while none is recorded.</summary>
    MonitoredExit? ExitOf(string containerId, string bundleDir);

    /// <summary>Whether an exit is recorded for the container (or pod infra), without reading it.</summary>
    bool HasExitRecord(string containerId);

    /// <summary>The directory holding the container's attach socket.</summary>
    string AttachSocketDir(string containerId);

    /// <summary>Asks the monitor to reopen the container's log and waits until the file is back.</summary>
    Task ReopenLogAsync(string bundleDir, string logPath, CancellationToken cancellationToken);

    /// <summary>
    /// Kills the monitor of the container made from <paramref name="bundleDir"/> and every process working on that
    /// bundle (the runtime's create or restore, CRIU, the tasks it restored), orphans of a monitor already gone
    /// included: for a start that will not be finished.
    /// </summary>
    void KillLaunch(string bundleDir);

    /// <summary>Removes what the monitor leaves behind (exit record, attach sockets); safe to repeat.</summary>
    void Forget(string containerId);
}
