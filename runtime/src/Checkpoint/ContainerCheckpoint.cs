using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Server;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>What one checkpoint took: for the log line and the metrics.</summary>
public sealed record CheckpointResult(string ContainerId, string Location, long Bytes, TimeSpan Total, TimeSpan Frozen);

/// <summary>
/// CheckpointContainer: CRIU dumps a running container through its OCI runtime into a root-only tar.
/// The container is frozen only for the dump and the rootfs-diff capture, the archive is written after
/// it resumes, the request's timeout is honoured in every phase, and whatever happens the container is
/// resumed and no partial file is left.
/// </summary>
public sealed class ContainerCheckpoint(
    CriShimConfig config,
    StatePaths paths,
    ComponentProbe probe,
    ContainerService containers,
    RuntimeHandlers handlers,
    IRootfsService rootfs,
    ILogger<ContainerCheckpoint> logger)
{
    public const string InFlightFile = "inflight.json";

    /// <summary>Checkpoints <paramref name="containerId"/> to <paramref name="location"/>.</summary>
    /// <param name="timeoutSeconds">The request's timeout; 0 means the configured default.</param>
    /// <param name="callDeadline">The gRPC deadline (DateTime.MaxValue when the client set none).</param>
    /// <param name="cancellationToken">The call's token: cancelled at the gRPC deadline or when the client goes away.</param>
    public async Task<CheckpointResult> CheckpointAsync(string containerId, string location, long timeoutSeconds, DateTime callDeadline, CancellationToken cancellationToken)
    {
        await EnsureAvailableAsync(cancellationToken);
        ValidateLocation(location);
        if (timeoutSeconds < 0) throw new ArgumentException("timeout must not be negative");
        var limit = TimeSpan.FromSeconds(timeoutSeconds > 0 ? timeoutSeconds : config.Checkpoint.DefaultTimeoutSeconds);
        var untilDeadline = callDeadline - DateTime.UtcNow;
        if (untilDeadline < limit) limit = untilDeadline > TimeSpan.Zero ? untilDeadline : TimeSpan.Zero;
        var record = containers.Get(containerId);
        if (probe.Handlers.FirstOrDefault(h => h.Name == record.RuntimeHandler) is { CanCheckpoint: false } handler)
        {
            throw new CheckpointUnavailableException(
                $"runtime handler \"{handler.Name}\" ({handler.Path}, {handler.Version}) was built without CRIU support; point runtime.handlers.{handler.Name}.path at a build with +CRIU");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(limit);
        var phase = new PhaseClock();
        try
        {
            phase.Enter("waiting for another operation on the container to finish");
            var containerLock = await containers.LockAsync(record.Id, deadline.Token);
            containers.Refresh(record);
            if (record.State != ContainerState.ContainerRunning)
            {
                containerLock.Dispose();
                throw new WrongStateException($"container {record.Id} is not running: only a running container can be checkpointed");
            }
            return await CheckpointLockedAsync(record, location, phase, limit, containerLock, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested || DateTime.UtcNow >= callDeadline.AddMilliseconds(-50))
        {
            // Our limit or the gRPC deadline ran out (a client that simply went away stays "cancelled").
            throw new CheckpointTimeoutException(phase.Current, limit);
        }
        catch (ExternalCommandTimeoutException)
        {
            throw new CheckpointTimeoutException(phase.Current, limit);
        }
    }

    private async Task EnsureAvailableAsync(CancellationToken cancellationToken)
    {
        if (!config.Checkpoint.Enabled)
        {
            throw new CheckpointUnavailableException("checkpointing is disabled in the configuration (checkpoint.enabled = false)");
        }
        await probe.Completed.WaitAsync(cancellationToken);
        if (probe.Criu is not { Usable: true } criu)
        {
            throw new CheckpointUnavailableException($"CRIU is not usable on this node: {probe.Criu?.Detail ?? "not probed"}");
        }
    }

    private static void ValidateLocation(string location)
    {
        if (string.IsNullOrWhiteSpace(location)) throw new ArgumentException("location must name the archive file to write");
        if (!Path.IsPathRooted(location)) throw new ArgumentException($"location \"{location}\" must be an absolute path");
        if (location.EndsWith('/') || Directory.Exists(location))
        {
            throw new ArgumentException($"location \"{location}\" is a directory; it must name the archive file to write");
        }
    }

    /// <summary>
    /// CRIU is never killed while it dumps: killed after it has injected its parasite or while it cures
    /// the tasks, it takes the container's processes down with it (seen here with a 1 GiB dump killed
    /// late). So at the limit the caller gets DEADLINE_EXCEEDED at once, and the frozen window runs to
    /// its end in the background (bounded only by this), then thaws the container and cleans up.
    /// </summary>
    public static readonly TimeSpan DumpSafetyLimit = TimeSpan.FromMinutes(10);

    /// <param name="containerLock">Held until the container is thawed and the work dir removed, even past the caller's limit.</param>
    private async Task<CheckpointResult> CheckpointLockedAsync(ContainerRecord record, string location, PhaseClock phase, TimeSpan limit,
        IDisposable containerLock, CancellationToken token)
    {
        var total = Stopwatch.StartNew();
        var runtime = handlers.TryGet(record.RuntimeHandler, out var r) ? r
            : throw new InvalidOperationException($"runtime handler \"{record.RuntimeHandler}\" is no longer configured");

        string workDir = Path.Combine(paths.Checkpoints, $"{record.Id}-{Guid.NewGuid():N}");
        string tempArchive = CheckpointArchive.TempPathFor(location);
        var frozen = new Stopwatch();
        Task? frozenWindow = null;
        bool finishesInBackground = false;
        try
        {
            phase.Enter("checking free space");
            CheckFreeSpace(record, location);
            Directory.CreateDirectory(workDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            // crun does not create its image dir.
            Directory.CreateDirectory(Path.Combine(workDir, "checkpoint"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            AtomicFile.Write(Path.Combine(workDir, InFlightFile),
                JsonSerializer.SerializeToUtf8Bytes(new CheckpointInFlight(record.Id, record.RuntimeHandler, tempArchive, DateTimeOffset.UtcNow + DumpSafetyLimit),
                    CheckpointJson.Default.CheckpointInFlight));

            string specText = await File.ReadAllTextAsync(Path.Combine(containers.BundleDir(record.Id), "config.json"), token);
            var spec = JsonNode.Parse(specText)!.AsObject();
            var mountDestinations = MountDestinations(spec);

            frozenWindow = RunFrozenWindowAsync(runtime, record, workDir, mountDestinations, frozen, phase);
            await frozenWindow.WaitAsync(token);

            phase.Enter("writing the archive");
            long bytes;
            using (var archive = CheckpointArchive.Create(location, tempArchive))
            {
                WriteArchive(archive, record, spec, workDir, token);
                phase.Enter("syncing the archive to disk");
                token.ThrowIfCancellationRequested();
                bytes = archive.BytesWritten;
                archive.Commit();
            }
            var result = new CheckpointResult(record.Id, location, bytes, total.Elapsed, frozen.Elapsed);
            logger.LogInformation("checkpointed container {Id} to {Location}: {Bytes} bytes in {Total:0.000} s, frozen {Frozen:0.000} s",
                record.Id, location, bytes, result.Total.TotalSeconds, result.Frozen.TotalSeconds);
            return result;
        }
        catch (Exception e)
        {
            logger.LogWarning("checkpoint of container {Id} to {Location} failed while {Phase} after {Elapsed:0.000} s: {Error}",
                record.Id, location, phase.Current, total.Elapsed.TotalSeconds, e.Message);
            File.Delete(tempArchive);
            if (frozenWindow is { IsCompleted: false })
            {
                finishesInBackground = true;
                _ = frozenWindow.ContinueWith(window =>
                {
                    Directory.Delete(workDir, recursive: true);
                    containerLock.Dispose();
                    logger.LogInformation("container {Id} thawed {Frozen:0.000} s after its checkpoint was frozen; the abandoned dump was discarded{Error}",
                        record.Id, frozen.Elapsed.TotalSeconds, window.Exception is { } error ? $" ({error.GetBaseException().Message})" : "");
                }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
            throw;
        }
        finally
        {
            if (!finishesInBackground)
            {
                if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
                containerLock.Dispose();
            }
        }
    }

    /// <summary>Freeze, dump, capture the rootfs diff, thaw: never on the request's token, so it always ends thawed.</summary>
    private async Task RunFrozenWindowAsync(OciRuntime runtime, ContainerRecord record, string workDir, List<string> mountDestinations,
        Stopwatch frozen, PhaseClock phase)
    {
        phase.Enter("freezing the container");
        frozen.Start();
        try
        {
            await FreezeAsync(runtime, record.Id, CancellationToken.None);
            phase.Enter("dumping the container with CRIU");
            await DumpAsync(runtime, record, workDir, DumpSafetyLimit, CancellationToken.None);
            phase.Enter("capturing the rootfs diff");
            RootfsDiff.Capture(rootfs, record.Id, mountDestinations, workDir);
        }
        finally
        {
            await ResumeAsync(runtime, record.Id);
            frozen.Stop();
        }
    }

    private void CheckFreeSpace(ContainerRecord record, string location)
    {
        string? existing = Path.GetDirectoryName(location);
        while (existing is not null && !Directory.Exists(existing)) existing = Path.GetDirectoryName(existing);
        ulong needed = ContainerCgroup.MemoryUsageBytes(record.Pid) + rootfs.WritableLayerBytes(record.Id);
        ulong available = FileSystems.StatFs(existing ?? "/").AvailableBytes;
        // The CRIU images land in the state dir first, then in the archive: both must fit.
        ulong stateAvailable = FileSystems.StatFs(config.State.Root).AvailableBytes;
        if (available < needed || stateAvailable < needed)
        {
            throw new InsufficientSpaceException(
                $"not enough free space to checkpoint container {record.Id}: it needs about {needed >> 20} MiB " +
                $"(memory plus writable layer), {location} has {available >> 20} MiB free and {config.State.Root} has {stateAvailable >> 20} MiB free");
        }
    }

    /// <summary>
    /// cgroup v1's freezer can fail to settle while the container forks ("unable to freeze");
    /// the attempt is repeated until it holds or the checkpoint's time runs out.
    /// </summary>
    private static async Task FreezeAsync(OciRuntime runtime, string containerId, CancellationToken token)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await runtime.PauseAsync(containerId, token);
                return;
            }
            catch (ExternalCommandException e) when (attempt < 10 && e.StandardError.Contains("unable to freeze", StringComparison.OrdinalIgnoreCase))
            {
                await runtime.ResumeAsync(containerId, CancellationToken.None);
                await Task.Delay(50 * attempt, token);
            }
        }
    }

    private async Task DumpAsync(OciRuntime runtime, ContainerRecord record, string workDir, TimeSpan limit, CancellationToken token)
    {
        var options = new List<string>();
        if (config.Checkpoint.TcpEstablished) options.Add("--tcp-established");
        if (config.Checkpoint.ExtUnixSk) options.Add("--ext-unix-sk");
        try
        {
            await runtime.CheckpointAsync(record.Id, Path.Combine(workDir, "checkpoint"), workDir, options, limit, token);
        }
        catch (ExternalCommandException e)
        {
            throw new InvalidOperationException($"CRIU could not dump container {record.Id}: {LastLines(Path.Combine(workDir, "dump.log"), 10) ?? e.StandardError.Trim()}");
        }
    }

    private static string? LastLines(string path, int count) =>
        File.Exists(path) ? string.Join('\n', File.ReadLines(path).Where(l => l.Length > 0).TakeLast(count)) : null;

    private async Task ResumeAsync(OciRuntime runtime, string containerId)
    {
        try
        {
            await runtime.ResumeAsync(containerId, CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogError("could not resume container {Id} after its checkpoint: {Error}", containerId, e.Message);
            throw;
        }
    }

    private static List<string> MountDestinations(JsonObject spec) =>
        spec["mounts"]?.AsArray().Select(m => m?["destination"]?.GetValue<string>() ?? "").Where(d => d.Length > 0).ToList() ?? [];

    private void WriteArchive(CheckpointArchive archive, ContainerRecord record, JsonObject spec, string workDir, CancellationToken token)
    {
        archive.AddTree(Path.Combine(workDir, "checkpoint"), "checkpoint", token);
        var containerConfig = record.ConfigMessage;
        var configDump = new CheckpointConfigDump(record.Id, containerConfig.Metadata.Name, record.ImageId, record.ImageRef,
            record.ImageName, record.RuntimeHandler, DateTimeOffset.UnixEpoch.AddTicks(record.CreatedAtNanos / 100), DateTimeOffset.UtcNow, false);
        archive.AddBytes("config.dump", JsonSerializer.SerializeToUtf8Bytes(configDump, CheckpointJson.Default.CheckpointConfigDump));
        archive.AddBytes("spec.dump", System.Text.Encoding.UTF8.GetBytes(spec.ToJsonString()));
        archive.AddBytes("bind.mounts", JsonSerializer.SerializeToUtf8Bytes(BindMounts(spec), CheckpointJson.Default.ListBindMountDump));
        foreach (string name in new[] { "stats-dump", "dump.log", RootfsDiff.TarName, RootfsDiff.DeletedName })
        {
            string path = Path.Combine(workDir, name);
            if (File.Exists(path)) archive.AddFile(path, name, token);
        }
        if (File.Exists(record.LogPath)) archive.AddFile(record.LogPath, "container.log", token);
    }

    /// <summary>The container's bind mounts minus the ones every container gets.</summary>
    private static List<BindMountDump> BindMounts(JsonObject spec)
    {
        string[] implicitDestinations = ["/dev", "/dev/shm", "/proc", "/run", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
        var result = new List<BindMountDump>();
        foreach (var mount in spec["mounts"]?.AsArray() ?? [])
        {
            if (mount?["type"]?.GetValue<string>() != "bind") continue;
            string destination = mount["destination"]!.GetValue<string>();
            string source = mount["source"]!.GetValue<string>();
            if (implicitDestinations.Contains(destination) || !Path.Exists(source)) continue;
            bool isDirectory = Directory.Exists(source);
            result.Add(new BindMountDump(source, destination, isDirectory ? "directory" : "file", (int)File.GetUnixFileMode(source)));
        }
        return result;
    }

    /// <summary>The phase a checkpoint is in, for the DEADLINE_EXCEEDED message.</summary>
    private sealed class PhaseClock
    {
        public string Current { get; private set; } = "starting";

        public void Enter(string phase) => Current = phase;
    }
}
