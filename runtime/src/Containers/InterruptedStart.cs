using CriShim.Runtime.Events;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>
/// Settles a StartContainer that a daemon kill -9 cut short (<see cref="ContainerRecord.StartingAtNanos"/> found
/// set under the container's lock), from the OCI runtime's own state and conmon's files, so a container is never
/// left CREATED while its process runs (a retried start would fail) nor RUNNING without one:
/// running or paused: RUNNING, with the pid and process identity the runtime reports;
/// created: the start never reached the runtime, so CREATED and StartContainer can be retried;
/// stopped, or an exit recorded by conmon: the process ran and ended, and conmon's exit file tells how;
/// unknown to the runtime: EXITED 255 for a started container (the runtime made it at CreateContainer, and it is
/// gone), CREATED for a restore (the runtime never got to make it) while its CRIU images are there to retry it.
/// A restore that conmon outlived the daemon to carry on is left under way until conmon's runtime finishes.
/// </summary>
internal sealed class InterruptedStart(
    ContainerService containers,
    RecordStore<ContainerRecord> records,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    ContainerEventPublisher events,
    ILogger logger)
{
    private const string Cut = "the daemon was killed during StartContainer";

    /// <summary>Settles the start (the container's lock held); false while it is still under way or the runtime cannot tell.</summary>
    public async Task<bool> SettleAsync(ContainerRecord record, CancellationToken cancellationToken)
    {
        if (record.StartingAtNanos == 0) return true;
        if (record.State != ContainerState.ContainerCreated)
        {
            // Its outcome was recorded (an exit noticed meanwhile): only the marker is left.
            Save(record, () => { });
            return true;
        }
        if (!handlers.TryGet(record.RuntimeHandler, out var runtime))
        {
            logger.LogWarning("container {Id}: its start was interrupted and its runtime handler {Handler} is no longer configured", record.Id, record.RuntimeHandler);
            return false;
        }
        // Looked at before the runtime is asked: a conmon that exits meanwhile has finished its restore, and the state then tells.
        var conmon = monitor.MonitorOf(containers.BundleDir(record.Id));
        OciState? state;
        try
        {
            state = await runtime.StateAsync(record.Id, cancellationToken);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            logger.LogWarning("container {Id}: its start was interrupted and {Handler} state failed: {Error}", record.Id, runtime.Handler, e.Message);
            return false;
        }
        if (state?.Status is "running" or "paused")
        {
            Started(record, state.Pid, conmon);
            return true;
        }
        bool restoring = record.Restore is not null;
        // conmon, which outlives the daemon, is still running `restore`: it ends with the container running, or exits.
        if (restoring && conmon is not null && state?.Status is null or "created") return false;
        if (state?.Status == "stopped" || monitor.HasExitRecord(record.Id))
        {
            Ended(record, runtime.Handler, conmon);
        }
        else if (state?.Status == "created" && !restoring)
        {
            // conmon made it at CreateContainer and `start` never ran (an orphaned `runc start` would have
            // finished long before a restarted daemon looks): it waits to be started.
            Save(record, () => { });
            logger.LogWarning("container {Id}: its start was interrupted before {Handler} started it; it can be started again", record.Id, runtime.Handler);
        }
        else if (restoring)
        {
            // conmon is gone: what the runtime made of the restore (if anything) goes, and the restore can be tried again.
            if (state is not null) await runtime.DeleteAsync(record.Id, CancellationToken.None);
            ResetRestore(record, record.Restore!);
        }
        else
        {
            containers.MarkExited(record, 255, "Error", $"{Cut}; {runtime.Handler} does not know the container");
        }
        return true;
    }

    private void Started(ContainerRecord record, int pid, ProcessIdentity? conmon)
    {
        Save(record, () =>
        {
            record.State = ContainerState.ContainerRunning;
            record.StartedAtNanos = record.StartingAtNanos;
            record.Pid = pid;
            record.Init = ProcessIdentity.Of(pid) ?? record.Init;
            record.Monitor = conmon ?? record.Monitor;
            if (record.Restore is { } restore) record.Restore = restore with { RestoredAtNanos = record.StartingAtNanos };
        });
        events.Publish(ContainerEventType.ContainerStartedEvent, record.Id, record.PodId);
        logger.LogWarning("container {Id}: its start was interrupted by a daemon restart; the runtime runs it as pid {Pid}", record.Id, pid);
    }

    /// <summary>
    /// The process ran and has ended. (A created container killed before its start reads the same; the start's
    /// time is all that is known of when it ran.) conmon's exit file, once written, tells how it ended.
    /// </summary>
    private void Ended(ContainerRecord record, string handler, ProcessIdentity? conmon)
    {
        if (conmon is null && !monitor.HasExitRecord(record.Id))
        {
            record.StartedAtNanos = record.StartingAtNanos;
            containers.MarkExited(record, 255, "Error", $"{Cut}; conmon is gone and {handler} reports the container stopped");
            return;
        }
        Started(record, record.Pid, conmon);
        containers.Refresh(record);
    }

    private void ResetRestore(ContainerRecord record, ContainerRestoreState restore)
    {
        if (!File.Exists(Path.Combine(restore.ImagesDir, "inventory.img")))
        {
            containers.MarkExited(record, 255, "Error", $"{Cut}; the restore cannot be tried again: its CRIU images in {restore.ImagesDir} are gone");
            return;
        }
        monitor.Forget(record.Id);
        // A new conmon's create waits on this file: a dead conmon's pid in it would read as the new one dying.
        File.Delete(Conmon.ConmonPidFile(containers.BundleDir(record.Id)));
        Save(record, () =>
        {
            record.Pid = 0;
            record.Init = null;
            record.Monitor = null;
        });
        logger.LogWarning("container {Id}: its restore was interrupted before the runtime made the container; it can be started again", record.Id);
    }

    /// <summary>Applies a verdict and clears the marker in one atomic write (Status and List refresh records without the lock).</summary>
    private void Save(ContainerRecord record, Action verdict)
    {
        lock (record)
        {
            verdict();
            record.StartingAtNanos = 0;
            records.Save(record);
        }
    }
}
