using System.Text.Json;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Events;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>The checkpoints of one container that a daemon crash interrupted, with the container's lock held.</summary>
public sealed record InterruptedCheckpoints(string ContainerId, List<(string WorkDir, CheckpointInFlight InFlight)> Checkpoints, IDisposable Lock);

/// <summary>
/// Undoes checkpoints that a daemon crash interrupted: stops their runtime and CRIU processes,
/// resumes the container, and removes the temp archive and the work dir. The containers are locked
/// before the socket serves and the work runs after it (waiting out an orphaned CRIU dump may take
/// minutes), so no call acts on a container still frozen while start-up is never delayed.
/// </summary>
public sealed class CheckpointRecovery(
    StatePaths paths,
    RuntimeHandlers handlers,
    ContainerLocks locks,
    RecordStore<ContainerRecord> records,
    ContainerEventPublisher events,
    ILogger<CheckpointRecovery> logger)
{
    /// <summary>ContainerStatus.reason of a container that an interrupted checkpoint left frozen and that could not be thawed.</summary>
    public const string FrozenReason = "Frozen";

    private const int ResumeAttempts = 5;

    /// <summary>Before serving: finds the interrupted checkpoints and locks their containers; leftovers without a marker go.</summary>
    public async Task<List<InterruptedCheckpoints>> LockInterruptedAsync(CancellationToken cancellationToken)
    {
        var byContainer = new Dictionary<string, List<(string, CheckpointInFlight)>>();
        if (Directory.Exists(paths.Checkpoints))
        {
            foreach (string workDir in Directory.EnumerateDirectories(paths.Checkpoints))
            {
                if (ReadMarker(workDir) is { } inFlight)
                {
                    if (!byContainer.TryGetValue(inFlight.ContainerId, out var list)) byContainer[inFlight.ContainerId] = list = [];
                    list.Add((workDir, inFlight));
                }
                else
                {
                    DumpImagesTmpfs.DeleteWorkDir(workDir);
                }
            }
        }
        var interrupted = new List<InterruptedCheckpoints>(byContainer.Count);
        foreach (var (id, checkpoints) in byContainer)
        {
            interrupted.Add(new InterruptedCheckpoints(id, checkpoints, await locks.AcquireAsync(id, cancellationToken)));
        }
        return interrupted;
    }

    private CheckpointInFlight? ReadMarker(string workDir)
    {
        string marker = Path.Combine(workDir, CheckpointPipeline.InFlightFile);
        try
        {
            return File.Exists(marker) ? JsonSerializer.Deserialize(File.ReadAllBytes(marker), CheckpointJson.Default.CheckpointInFlight) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            logger.LogError("discarding unreadable checkpoint marker {Marker}: {Error}", marker, e.Message);
            return null;
        }
    }

    /// <summary>
    /// In the background: each container's checkpoints are undone and its lock released, whatever
    /// happens. Stopping the daemon leaves the markers, so the next start finishes the work.
    /// </summary>
    public Task RecoverAsync(List<InterruptedCheckpoints> interrupted, CancellationToken stopping) =>
        Task.WhenAll(interrupted.Select(container => Task.Run(() => RecoverContainerAsync(container, stopping), CancellationToken.None)));

    private async Task RecoverContainerAsync(InterruptedCheckpoints container, CancellationToken stopping)
    {
        using var _ = container.Lock;
        try
        {
            foreach (var (workDir, inFlight) in container.Checkpoints)
            {
                await FinishOrphansAsync(workDir, inFlight.Deadline, stopping);
                File.Delete(inFlight.TempArchive);
            }
            var record = records.Get(container.ContainerId);
            // A container removed, or whose process is gone (a reboot), has nothing left to thaw.
            if (record is not null && record.IsInitAlive() && !await ResumeAsync(record, container.Checkpoints[0].InFlight.RuntimeHandler, stopping))
            {
                return; // The markers stay: the next start tries again.
            }
            foreach (var (workDir, _) in container.Checkpoints) DumpImagesTmpfs.DeleteWorkDir(workDir);
            logger.LogWarning("cleaned up the checkpoint of container {Id} that was interrupted by a daemon restart", container.ContainerId);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            logger.LogError("could not clean up the interrupted checkpoint of container {Id}: {Error}", container.ContainerId, e.Message);
        }
    }

    /// <summary>Thaws the container, retrying a failing resume; one still frozen after that is reported, not forgotten.</summary>
    private async Task<bool> ResumeAsync(ContainerRecord record, string handler, CancellationToken stopping)
    {
        if (!handlers.TryGet(handler, out var runtime))
        {
            ReportFrozen(record, $"its runtime handler \"{handler}\" is no longer configured");
            return false;
        }
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await runtime.ResumeAsync(record.Id, stopping);
                break;
            }
            catch (ExternalCommandException e) when (attempt < ResumeAttempts)
            {
                logger.LogWarning("resuming container {Id} after its interrupted checkpoint failed (attempt {Attempt}): {Error}", record.Id, attempt, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(attempt), stopping);
            }
            catch (ExternalCommandException e)
            {
                ReportFrozen(record, e.Message);
                return false;
            }
        }
        if (record.Reason == FrozenReason) SetReason(record, "", "");
        return true;
    }

    private void ReportFrozen(ContainerRecord record, string why)
    {
        logger.LogError("container {Id} stays frozen: an interrupted checkpoint froze it and it cannot be resumed: {Why}", record.Id, why);
        SetReason(record, FrozenReason, $"an interrupted checkpoint left the container frozen and resuming it failed: {why}");
    }

    /// <summary>
    /// Sent as a CREATED event, which the kubelet's evented PLEG takes as a status update without a
    /// lifecycle transition: the container did not stop, it only cannot run.
    /// </summary>
    private void SetReason(ContainerRecord record, string reason, string message)
    {
        records.Update(record.Id, current => current with { Reason = reason, Message = message });
        events.Publish(ContainerEventType.ContainerCreatedEvent, record.Id, record.PodId);
    }

    /// <summary>
    /// The orphaned `runc checkpoint` (named by its work path) may still be dumping: CRIU is let finish,
    /// as killing it mid-dump can take the container's tasks down with it; only past the checkpoint's
    /// own deadline is it killed.
    /// </summary>
    private async Task FinishOrphansAsync(string workDir, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        while (ProcessTree.Naming(workDir) is { Count: > 0 } orphans)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                logger.LogWarning("killing checkpoint processes {Pids} left past their deadline", string.Join(", ", orphans));
                ProcessTree.Kill(orphans);
                return;
            }
            await Task.Delay(100, cancellationToken);
        }
    }
}
