using System.Diagnostics;
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
/// A restore that conmon outlived the daemon to carry on is left under way until conmon's runtime finishes; StopContainer
/// and RemoveContainer wait for it (<see cref="SettleOrAbandonAsync"/>) and abandon one that does not finish in time. A
/// restore whose conmon died too is not left to orphans: what still works on it is killed, so it either ran (RUNNING,
/// unmonitored, as a container whose conmon alone was killed) or is undone (CREATED, to be tried again).
/// </summary>
internal sealed class InterruptedStart(
    ContainerExitRecorder exits,
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    RecordStore<ContainerRecord> records,
    ContainerEventPublisher events,
    ILogger logger)
{
    private const string Cut = "the daemon was killed during StartContainer";

    /// <summary>How often a wait for a restore under way looks again: each look runs the runtime's `state`.</summary>
    private static readonly TimeSpan RestorePollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Settles the start (the container's lock held). Settled is false while the start is still under way or the
    /// runtime cannot tell; Record is the container as stored now (as given, when it was removed meanwhile).
    /// </summary>
    public async Task<(bool Settled, ContainerRecord Record)> SettleAsync(ContainerRecord record, CancellationToken cancellationToken)
    {
        // The caller's copy may predate the lock: the stored record is the one to settle.
        record = records.Get(record.Id) ?? record;
        if (record.StartingAtNanos == 0) return (true, record);
        if (record.State != ContainerState.ContainerCreated)
        {
            // Its outcome was recorded (an exit noticed meanwhile): only the marker is left.
            return (true, Settle(record, current => current));
        }
        if (!handlers.TryGet(record.RuntimeHandler, out var runtime))
        {
            logger.LogWarning("container {Id}: its start was interrupted and its runtime handler {Handler} is no longer configured", record.Id, record.RuntimeHandler);
            return (false, record);
        }
        // Looked at before the runtime is asked: a conmon that exits meanwhile has finished its restore, and the state then tells.
        var conmon = monitor.MonitorOf(paths.ContainerBundle(record.Id));
        OciState? state;
        try
        {
            state = await runtime.StateAsync(record.Id, cancellationToken);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            logger.LogWarning("container {Id}: its start was interrupted and {Handler} state failed: {Error}", record.Id, runtime.Handler, e.Message);
            return (false, record);
        }
        if (state?.Status is "running" or "paused") return (true, Started(record, state.Pid, conmon));
        bool restoring = record.Restore is not null;
        // conmon, which outlives the daemon, is still running `restore`: it ends with the container running, or exits.
        if (restoring && conmon is not null && state?.Status is null or "created") return (false, record);
        // conmon died: a `restore` it left orphaned would run the container with no one to record its exit. Killed, the
        // restore either never happened or its process is gone, and the runtime's state read above tells which.
        if (restoring && conmon is null) monitor.KillLaunch(paths.ContainerBundle(record.Id));
        if (state?.Status == "stopped" || monitor.HasExitRecord(record.Id))
        {
            return (true, Ended(record, runtime.Handler, conmon));
        }
        if (state?.Status == "created" && !restoring)
        {
            // conmon made it at CreateContainer and `start` never ran (an orphaned `runc start` would have
            // finished long before a restarted daemon looks): it waits to be started.
            logger.LogWarning("container {Id}: its start was interrupted before {Handler} started it; it can be started again", record.Id, runtime.Handler);
            return (true, Settle(record, current => current));
        }
        if (restoring)
        {
            // conmon is gone: what the runtime made of the restore (if anything, also since the look above) goes, and
            // the restore can be tried again.
            await runtime.DeleteAsync(record.Id, CancellationToken.None);
            return (true, ResetRestore(record, record.Restore!));
        }
        return (true, exits.RecordExit(record, 255, "Error", $"{Cut}; {runtime.Handler} does not know the container"));
    }

    private ContainerRecord Started(ContainerRecord record, int pid, ProcessIdentity? conmon)
    {
        var init = ProcessIdentity.Of(pid);
        record = Settle(record, current => current with
        {
            State = ContainerState.ContainerRunning,
            StartedAtNanos = current.StartingAtNanos,
            Pid = pid,
            Init = init ?? current.Init,
            // A restore's conmon is recorded once it succeeded: one that died before is still what the container lacks.
            Monitor = conmon ?? current.Monitor ?? ProcessIdentity.Gone,
        });
        // The restore happened: its images are not needed again.
        record.Restore?.DeleteImages();
        if (record.State != ContainerState.ContainerRunning) return record;
        events.Publish(ContainerEventType.ContainerStartedEvent, record.Id, record.PodId);
        logger.LogWarning("container {Id}: its start was interrupted by a daemon restart; the runtime runs it as pid {Pid}", record.Id, pid);
        return record;
    }

    /// <summary>
    /// The process ran and has ended. (A created container killed before its start reads the same; the start's
    /// time is all that is known of when it ran.) conmon's exit file, once written, tells how it ended.
    /// </summary>
    private ContainerRecord Ended(ContainerRecord record, string handler, ProcessIdentity? conmon)
    {
        if (conmon is null && !monitor.HasExitRecord(record.Id))
        {
            return exits.RecordExit(record, 255, "Error", $"{Cut}; conmon is gone and {handler} reports the container stopped",
                startedAtNanos: record.StartingAtNanos);
        }
        return exits.Refresh(Started(record, record.Pid, conmon));
    }

    /// <summary>
    /// For StopContainer and RemoveContainer (the container's lock held): settles the start, waiting up to
    /// <paramref name="wait"/> for a restore still under way under a conmon that outlived the daemon. One still under
    /// way then is abandoned rather than left to finish behind the caller: conmon and everything working on the bundle
    /// (the runtime's restore, CRIU, the tasks it restored) are killed, what the runtime made of it is deleted, and the
    /// exit is recorded with the reason.
    /// </summary>
    /// <returns>The container as stored now (as given, when it was removed meanwhile).</returns>
    public async Task<ContainerRecord> SettleOrAbandonAsync(ContainerRecord record, TimeSpan wait, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var (settled, current) = await SettleAsync(record, cancellationToken);
            if (settled || current.Restore is null || monitor.MonitorOf(paths.ContainerBundle(current.Id)) is null) return current;
            if (waited.Elapsed >= wait) return await AbandonRestoreAsync(current, waited.Elapsed);
            await Task.Delay(RestorePollInterval, cancellationToken);
            record = current;
        }
    }

    private async Task<ContainerRecord> AbandonRestoreAsync(ContainerRecord record, TimeSpan waited)
    {
        monitor.KillLaunch(paths.ContainerBundle(record.Id));
        if (handlers.TryGet(record.RuntimeHandler, out var runtime)) await runtime.DeleteAsync(record.Id, CancellationToken.None);
        logger.LogWarning("container {Id}: the restore a daemon restart left under way was still running after {Waited:0.0} s; conmon and the restore were killed",
            record.Id, waited.TotalSeconds);
        return exits.RecordExit(record, 255, "Error",
            $"{Cut}; the restore it left running under conmon had not finished when the container was stopped ({waited.TotalSeconds:0.0} s later), so it was killed");
    }

    private ContainerRecord ResetRestore(ContainerRecord record, ContainerRestoreState restore)
    {
        if (!File.Exists(Path.Combine(restore.ImagesDir, "inventory.img")))
        {
            return exits.RecordExit(record, 255, "Error", $"{Cut}; the restore cannot be tried again: its CRIU images in {restore.ImagesDir} are gone");
        }
        monitor.Forget(record.Id);
        // A new conmon's create waits on this file: a dead conmon's pid in it would read as the new one dying.
        File.Delete(Conmon.ConmonPidFile(paths.ContainerBundle(record.Id)));
        logger.LogWarning("container {Id}: its restore was interrupted before the runtime made the container; it can be started again", record.Id);
        return Settle(record, current => current with { Pid = 0, Init = null, Monitor = null });
    }

    /// <summary>
    /// Applies a verdict to a container still CREATED and clears the marker, in one <see cref="RecordStore{T}.Update"/>
    /// (status and list calls refresh without the lock: an exit they recorded meanwhile stands, only the marker goes).
    /// </summary>
    private ContainerRecord Settle(ContainerRecord record, Func<ContainerRecord, ContainerRecord> verdict)
    {
        try
        {
            return records.Update(record.Id, current =>
                (current.State == ContainerState.ContainerCreated ? verdict(current) : current) with { StartingAtNanos = 0 });
        }
        catch (NotFoundException)
        {
            return record; // Removed meanwhile: nothing left to settle.
        }
    }
}
