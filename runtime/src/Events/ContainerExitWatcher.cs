using System.Threading.Channels;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Events;

/// <summary>
/// Notices the exit files conmon writes, so a container's exit is recorded and its STOPPED event
/// sent within a moment even when no RPC asks. inotify (FileSystemWatcher) wakes the scan at once;
/// a rescan every <see cref="RescanInterval"/> covers events inotify dropped, and the first scan
/// reports exits that happened while the daemon was down. Exits no exit file will report are
/// found too: a container whose conmon died (see <see cref="ContainerExitRecorder.Refresh"/>), an infra
/// process that is gone (killed with its conmon, or a reboot), and a start that a daemon kill cut short
/// (see <see cref="InterruptedStart"/>). An infra process's exit makes its pod
/// not ready, with a STOPPED event for the pod.
/// </summary>
public sealed class ContainerExitWatcher(
    StatePaths paths,
    RecordStore<ContainerRecord> containerRecords,
    RecordStore<PodSandboxRecord> podRecords,
    ContainerLocks locks,
    ContainerExitRecorder exits,
    PodSandboxService sandboxes,
    IContainerMonitor monitor,
    ContainerEventBus bus,
    IHostApplicationLifetime lifetime,
    ILogger<ContainerExitWatcher> logger) : BackgroundService
{
    public static readonly TimeSpan RescanInterval = TimeSpan.FromSeconds(1);

    // A lifecycle call holding the lock notices the exit itself; the scan moves on and retries later.
    private static readonly TimeSpan LockWait = TimeSpan.FromMilliseconds(200);

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Before the server drains its requests, or open event streams would hold the shutdown up.
        using var closeStreams = lifetime.ApplicationStopping.Register(bus.Close);
        using var watcher = WatchExitDir();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ScanAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("scanning {Dir} for container exits failed: {Error}", paths.ExitDir, e.Message);
            }
            using var tick = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            tick.CancelAfter(RescanInterval);
            try
            {
                await _wake.Reader.ReadAsync(tick.Token);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
            }
        }
    }

    private FileSystemWatcher? WatchExitDir()
    {
        try
        {
            var watcher = new FileSystemWatcher(paths.ExitDir)
            {
                // conmon may create the file before it writes the exit code: LastWrite catches the write.
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite,
                IncludeSubdirectories = false,
            };
            watcher.Created += (_, _) => _wake.Writer.TryWrite(true);
            watcher.Changed += (_, _) => _wake.Writer.TryWrite(true);
            watcher.Renamed += (_, _) => _wake.Writer.TryWrite(true);
            watcher.Error += (_, e) => logger.LogWarning("watching {Dir} failed: {Error}; rescanning every {Interval}",
                paths.ExitDir, e.GetException().Message, RescanInterval);
            watcher.EnableRaisingEvents = true;
            return watcher;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            logger.LogWarning("cannot watch {Dir}: {Error}; rescanning every {Interval}", paths.ExitDir, e.Message, RescanInterval);
            return null;
        }
    }

    private async Task ScanAsync(CancellationToken cancellationToken)
    {
        foreach (var record in containerRecords.All.ToList())
        {
            if (record.State == ContainerState.ContainerExited ||
                !(monitor.HasExitRecord(record.Id) || ContainerExitRecorder.IsUnmonitored(record) || record.StartingAtNanos != 0)) continue;
            // Under the container's lock, so a start still under way reports STARTED before this STOPPED.
            await WithinLockWaitAsync(async limit =>
            {
                using var _ = await locks.AcquireAsync(record.Id, limit);
                await exits.ReconcileWithRuntimeAsync(record, cancellationToken);
            }, cancellationToken);
        }
        foreach (var pod in podRecords.All.ToList())
        {
            if (!pod.Ready || (!monitor.HasExitRecord(pod.Id) && pod.IsInfraAlive())) continue;
            await WithinLockWaitAsync(limit => sandboxes.NoticeInfraExitAsync(pod.Id, limit), cancellationToken);
        }
    }

    private static async Task WithinLockWaitAsync(Func<CancellationToken, Task> action, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(LockWait);
        try
        {
            await action(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }
}
