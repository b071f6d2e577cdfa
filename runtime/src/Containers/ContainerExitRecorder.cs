using CriShim.Runtime.Events;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>
/// The one place a container's exit is learnt and written: conmon's exit file, a dead conmon whose
/// container process is gone, the OCI runtime's view of a container whose conmon died, a start that
/// failed, a created container killed before it started, a start that a daemon kill cut short
/// (settled by <see cref="InterruptedStart"/>, which writes its exits here). Each exit is written once, through
/// <see cref="RecordStore{T}.Update"/>, with its STOPPED event: status and list calls, the lifecycle and the
/// exit watcher all come here, and the first to notice an exit records it.
/// </summary>
public sealed class ContainerExitRecorder(
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    RecordStore<ContainerRecord> containers,
    TimeProvider time,
    ContainerEventPublisher events,
    ILogger<ContainerExitRecorder> logger)
{
    private InterruptedStart InterruptedStarts => _interruptedStarts ??= new(this, paths, handlers, monitor, containers, events, logger);
    private InterruptedStart? _interruptedStarts;

    /// <summary>
    /// Notices an exit recorded by conmon (also one that happened while the daemon was down), and an
    /// exit no exit file will ever report: conmon died (killed, or the node rebooted) and the
    /// container's process is gone too. A process that outlived its conmon still runs: StopContainer
    /// kills it through the runtime.
    /// </summary>
    /// <returns>The container as stored now (as given, when it was removed meanwhile).</returns>
    public ContainerRecord Refresh(ContainerRecord record)
    {
        record = containers.Get(record.Id) ?? record;
        if (record.State == ContainerState.ContainerExited) return record;
        if (NoticeExitFile(record) is { } exited) return exited;
        if (!IsUnmonitored(record)) return record;
        // conmon writes the exit file and then exits: one written just before this look counts.
        if (NoticeExitFile(record) is { } exitedJustNow) return exitedJustNow;
        if (record.IsInitAlive()) return record;
        return RecordExit(record, 255, "Error", "conmon died; the container process is gone");
    }

    /// <summary>
    /// <see cref="Refresh"/>, and for a container whose conmon died while its recorded process still runs, the OCI
    /// runtime's view too: a runtime that reports the container stopped, or no longer knows it, has the last word.
    /// Status and list calls only <see cref="Refresh"/> (synchronous, no process spawned); Stop and the exit
    /// watcher (whose first scan is the start-up one) ask the runtime. A runtime that fails or hangs past its short
    /// timeout leaves the container as Refresh found it: Stop then kills the process and the exit is recorded.
    /// A start that a daemon kill cut short is settled first (<see cref="InterruptedStart"/>; the container's lock held).
    /// </summary>
    public async Task<ContainerRecord> ReconcileWithRuntimeAsync(ContainerRecord record, CancellationToken cancellationToken)
    {
        var (settled, current) = await InterruptedStarts.SettleAsync(record, cancellationToken);
        if (!settled) return current;
        record = Refresh(current);
        if (!IsUnmonitored(record)) return record;
        var runtime = handlers.Of(record.RuntimeHandler);
        OciState? state;
        try
        {
            state = await runtime.StateAsync(record.Id, cancellationToken);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            logger.LogWarning("container {Id}: conmon died and {Handler} state failed: {Error}", record.Id, runtime.Handler, e.Message);
            return record;
        }
        string? found = state is null ? $"{runtime.Handler} does not know the container"
            : state.Status == "stopped" ? $"{runtime.Handler} reports the container stopped"
            : null;
        return found is null ? record : RecordExit(record, 255, "Error", $"conmon died; {found}");
    }

    /// <summary>
    /// For StopContainer and RemoveContainer: a start that a daemon kill cut short is settled, and a restore it left
    /// under way is waited for up to <paramref name="wait"/>, then abandoned (see <see cref="InterruptedStart.SettleOrAbandonAsync"/>).
    /// </summary>
    public Task<ContainerRecord> SettleInterruptedStartAsync(ContainerRecord record, TimeSpan wait, CancellationToken cancellationToken) =>
        InterruptedStarts.SettleOrAbandonAsync(record, wait, cancellationToken);

    /// <summary>conmon is gone while the container has not exited: no exit file will come.</summary>
    public static bool IsUnmonitored(ContainerRecord record) =>
        record.State != ContainerState.ContainerExited && record.Monitor is { } monitor && !monitor.IsAlive();

    private ContainerRecord? NoticeExitFile(ContainerRecord record)
    {
        if (monitor.ExitOf(record.Id, paths.ContainerBundle(record.Id)) is not { } exit) return null;
        string reason = exit.OomKilled ? "OOMKilled" : exit.ExitCode == 0 ? "Completed" : "Error";
        return RecordExit(record, exit.ExitCode, reason, "", exit.AtUtc);
    }

    /// <summary>
    /// Writes the exit and sends STOPPED, unless an exit is already recorded: that first one stands.
    /// <paramref name="at"/> is when the exit happened, when known (conmon's exit file); else now.
    /// <paramref name="startedAtNanos"/>, when not 0, is a start time learnt only now (a start cut short).
    /// The exit is the start's outcome: it clears <see cref="ContainerRecord.StartingAtNanos"/>.
    /// </summary>
    /// <returns>The container as stored now (as given, when it was removed meanwhile).</returns>
    public ContainerRecord RecordExit(ContainerRecord record, int exitCode, string reason, string message, DateTime? at = null, long startedAtNanos = 0)
    {
        long finishedAt = at is { } exitedAt ? UnixNanos.Of(new DateTimeOffset(exitedAt)) : time.Now();
        bool recorded = false;
        ContainerRecord stored;
        try
        {
            // Status and list calls refresh without the container's lock: only the first to notice reports the exit.
            stored = containers.Update(record.Id, current =>
            {
                if (current.State == ContainerState.ContainerExited) return current;
                recorded = true;
                return current with
                {
                    State = ContainerState.ContainerExited,
                    ExitCode = exitCode,
                    Reason = reason,
                    Message = message,
                    FinishedAtNanos = finishedAt,
                    StartedAtNanos = startedAtNanos != 0 ? startedAtNanos : current.StartedAtNanos,
                    StartingAtNanos = 0,
                };
            });
        }
        catch (NotFoundException)
        {
            return record; // Removed meanwhile: nothing left to record.
        }
        if (recorded) events.Publish(ContainerEventType.ContainerStoppedEvent, stored.Id, stored.PodId);
        return stored;
    }
}
