using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>What is done to an existing container besides its lifecycle: ExecSync, log reopening, resource updates.</summary>
public sealed class ContainerOperations(
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    IIdSource ids,
    RecordStore<ContainerRecord> containers,
    ContainerLocks locks,
    ContainerLookup lookup,
    ContainerExitRecorder exits)
{
    /// <summary>What ExecSync keeps of each of stdout and stderr, as CRI-O; the rest is read and dropped.</summary>
    public const int ExecSyncOutputLimit = 16 * 1024 * 1024;

    public async Task<ExecSyncResponse> ExecSyncAsync(string id, IReadOnlyList<string> command, long timeoutSeconds, CancellationToken cancellationToken)
    {
        ProcessArguments.Validate(command, "cmd");
        var record = lookup.Get(id);
        if (record.State != ContainerState.ContainerRunning)
        {
            throw new WrongStateException($"container {record.Id} is {ContainerStatusMapper.Describe(record.State)}, not running");
        }
        StateDirectory.Create(paths.Exec);
        string pidFile = Path.Combine(paths.Exec, $"{record.Id}-{ids.NewId()[..12]}.pid");
        // The CRI's 0 means no limit; a day bounds a forgotten exec.
        var limit = timeoutSeconds > 0 ? RequestTimeout.FromSeconds(timeoutSeconds, "timeout") : TimeSpan.FromDays(1);
        try
        {
            var output = await handlers.Of(record.RuntimeHandler).ExecAsync(record.Id, command, limit, ExecSyncOutputLimit, pidFile, cancellationToken);
            // The buffers are the command's alone and not written again: wrapped, not copied.
            return new ExecSyncResponse
            {
                Stdout = UnsafeByteOperations.UnsafeWrap(output.StandardOutput.Bytes),
                Stderr = UnsafeByteOperations.UnsafeWrap(output.StandardError.Bytes),
                ExitCode = output.ExitCode,
            };
        }
        catch (ExternalCommandTimeoutException)
        {
            throw new TimeoutException($"command {string.Join(' ', command)} in container {record.Id} timed out after {timeoutSeconds}s and was killed");
        }
    }

    public async Task UpdateResourcesAsync(string id, LinuxContainerResources resources, CancellationToken cancellationToken)
    {
        var record = lookup.Get(id);
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        record = exits.Refresh(record);
        if (record.State == ContainerState.ContainerExited)
        {
            throw new WrongStateException($"container {record.Id} has exited; its resources cannot change");
        }
        string json = ContainerSpecBuilder.UpdatableResources(resources).ToJsonString();
        await handlers.Of(record.RuntimeHandler).UpdateResourcesAsync(record.Id, json, cancellationToken);
        containers.Update(record.Id, current => current with { Resources = resources.ToByteArray() });
    }

    public async Task ReopenLogAsync(string id, CancellationToken cancellationToken)
    {
        var record = lookup.Get(id);
        if (record.State != ContainerState.ContainerRunning)
        {
            throw new WrongStateException($"container {record.Id} is {ContainerStatusMapper.Describe(record.State)}, not running");
        }
        await monitor.ReopenLogAsync(paths.ContainerBundle(record.Id), record.LogPath, cancellationToken);
    }
}
