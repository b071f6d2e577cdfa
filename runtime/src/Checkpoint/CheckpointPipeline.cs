using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using CriShim.NativeInterop;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Stats;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>What one container's checkpoint took: for the log line and the metrics.</summary>
public sealed record CheckpointResult(string ContainerId, string Location, long Bytes, TimeSpan Total, TimeSpan Frozen);

/// <summary>One container of a checkpoint and the archive it goes to.</summary>
public sealed record CheckpointTarget(ContainerRecord Record, string Location);

/// <summary>
/// One checkpoint as a request asks for it, validated: the containers and their archives, the dump
/// options and the time it may take.
/// </summary>
/// <param name="Subject">"container &lt;id&gt;" or "pod &lt;id&gt;", for the log lines.</param>
/// <param name="CallDeadline">The gRPC deadline (DateTime.MaxValue when the client set none).</param>
public sealed record CheckpointJob(string Subject, IReadOnlyList<CheckpointTarget> Targets, CriuDumpOptions Options, TimeSpan Limit, DateTime CallDeadline)
{
    /// <summary>Checked once the handlers are known to checkpoint, before any lock is taken (the pod must be ready).</summary>
    public Action? RequireReady { get; init; }

    /// <summary>Runs after the archives are written, within the limit and still under the locks (the pod manifest).</summary>
    public Action<CheckpointPhase, List<CheckpointResult>, CancellationToken>? Complete { get; init; }

    /// <summary>Runs when the checkpoint fails once the locks are held: leaves the caller's directory as it was given.</summary>
    public Action? Undo { get; init; }
}

/// <summary>
/// The CRIU dump options that a request may set (the configuration gives the defaults). A restore must pass
/// the same ones, so CriShim's archives carry them in <see cref="FileName"/>, which other runtimes' readers ignore.
/// </summary>
public sealed record CriuDumpOptions(
    [property: JsonPropertyName("tcpEstablished")] bool TcpEstablished,
    [property: JsonPropertyName("extUnixSk")] bool ExtUnixSk)
{
    /// <summary>CriShim's own entry of a checkpoint archive: neither CRI-O nor containerd defines a place for these options.</summary>
    public const string FileName = "crishim.criu-options.json";

    public static CriuDumpOptions From(CheckpointConfig config) => new(config.TcpEstablished, config.ExtUnixSk);

    public IEnumerable<string> Arguments()
    {
        if (TcpEstablished) yield return "--tcp-established";
        if (ExtUnixSk) yield return "--ext-unix-sk";
    }
}

/// <summary>The phase a checkpoint is in, for the DEADLINE_EXCEEDED message.</summary>
public sealed class CheckpointPhase
{
    public string Current { get; private set; } = "starting";

    public void Enter(string phase) => Current = phase;
}

/// <summary>
/// The phases CheckpointContainer and CheckpointPod share. One cut over one or more locked, running
/// containers: freeze every one of them, CRIU-dump each and capture its rootfs diff into a private
/// work dir, thaw every one, and only then write each container's root-only tar. The request's limit
/// is honoured in every phase, and whatever happens every container is resumed and no partial archive
/// is left.
/// </summary>
public sealed class CheckpointPipeline(
    CheckpointConfig checkpointConfig,
    StateConfig state,
    StatePaths paths,
    ComponentProbe probe,
    ContainerLocks locks,
    ContainerExitRecorder exits,
    RuntimeHandlers handlers,
    IRootfsService rootfs,
    ILogger<CheckpointPipeline> logger)
{
    public const string InFlightFile = "inflight.json";

    /// <summary>
    /// CRIU is never killed while it dumps: killed after it has injected its parasite or while it cures
    /// the tasks, it takes the container's processes down with it (seen here with a 1 GiB dump killed
    /// late). So at the limit the caller gets DEADLINE_EXCEEDED at once, and the frozen window runs to
    /// its end in the background (bounded only by this), then thaws the containers and cleans up.
    /// </summary>
    public static readonly TimeSpan DumpSafetyLimit = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The one entry of CheckpointContainer and CheckpointPod: checks that checkpointing is available
    /// (before the request is even validated, so a node without CRIU answers UNIMPLEMENTED to any
    /// request), lets <paramref name="prepare"/> validate the request into a job, checks every
    /// container's handler, then takes every container's lock and checkpoints them as one cut. The locks
    /// are always released: at the end, or, past the limit, once the frozen window thaws in the background.
    /// </summary>
    /// <param name="method">The RPC, named in the UNIMPLEMENTED message.</param>
    /// <param name="cancellationToken">The call's token: cancelled at the gRPC deadline or when the client goes away.</param>
    /// <returns>Each container's result (bytes, wall time, frozen time), for the caller's log line.</returns>
    public async Task<List<CheckpointResult>> RunAsync(string method, Func<CheckpointJob> prepare, CancellationToken cancellationToken)
    {
        await EnsureAvailableAsync(method, cancellationToken);
        var job = prepare();
        foreach (var target in job.Targets) EnsureHandlerCanCheckpoint(target.Record, method);
        job.RequireReady?.Invoke();
        return await WithinLimitAsync(job.Limit, job.CallDeadline, cancellationToken, async (phase, token) =>
        {
            var locks = await LockRunningAsync([.. job.Targets.Select(t => t.Record)], phase, token);
            try
            {
                var results = await CheckpointLockedAsync(job.Targets, job.Options, phase, locks, job.Subject, token);
                job.Complete?.Invoke(phase, results, token);
                return results;
            }
            catch
            {
                job.Undo?.Invoke();
                throw;
            }
        });
    }

    /// <param name="method">The RPC, named in the UNIMPLEMENTED message.</param>
    public async Task EnsureAvailableAsync(string method, CancellationToken cancellationToken)
    {
        if (!checkpointConfig.Enabled)
        {
            throw new CheckpointUnavailableException(method, "checkpointing is disabled in the configuration (checkpoint.enabled = false)");
        }
        await probe.Completed.WaitAsync(cancellationToken);
        if (probe.Criu is not { Usable: true })
        {
            throw new CheckpointUnavailableException(method, $"CRIU is not usable on this node: {probe.Criu?.Detail ?? "not probed"}");
        }
    }

    public void EnsureHandlerCanCheckpoint(ContainerRecord record, string method)
    {
        if (probe.Handlers.FirstOrDefault(h => h.Name == record.RuntimeHandler) is { CanCheckpoint: false } handler)
        {
            throw new CheckpointUnavailableException(method,
                $"runtime handler \"{handler.Name}\" ({handler.Path}, {handler.Version}) was built without CRIU support; point runtime.handlers.{handler.Name}.path at a build with +CRIU");
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a token that ends at <paramref name="limit"/>; running out of
    /// time, whether ours or the gRPC deadline, becomes a <see cref="CheckpointTimeoutException"/> naming the phase.
    /// </summary>
    /// <param name="callDeadline">The gRPC deadline (DateTime.MaxValue when the client set none).</param>
    /// <param name="cancellationToken">The call's token: cancelled at the gRPC deadline or when the client goes away.</param>
    private async Task<T> WithinLimitAsync<T>(TimeSpan limit, DateTime callDeadline, CancellationToken cancellationToken,
        Func<CheckpointPhase, CancellationToken, Task<T>> body)
    {
        var untilDeadline = callDeadline - DateTime.UtcNow;
        if (untilDeadline < limit) limit = untilDeadline > TimeSpan.Zero ? untilDeadline : TimeSpan.Zero;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(limit);
        var phase = new CheckpointPhase();
        try
        {
            return await body(phase, deadline.Token);
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

    /// <summary>
    /// Takes every container's lock, in id order so that two checkpoints sharing containers cannot
    /// deadlock, then requires each to be running. The result releases them all.
    /// </summary>
    private async Task<IDisposable> LockRunningAsync(IReadOnlyCollection<ContainerRecord> records, CheckpointPhase phase, CancellationToken token)
    {
        var held = new HeldLocks();
        try
        {
            foreach (var record in records.OrderBy(r => r.Id, StringComparer.Ordinal))
            {
                phase.Enter($"waiting for another operation on container {record.Id} to finish");
                held.Add(await locks.AcquireAsync(record.Id, token));
            }
            foreach (var record in records)
            {
                if (exits.Refresh(record).State != ContainerState.ContainerRunning)
                {
                    throw new WrongStateException($"container {record.Id} is not running: only a running container can be checkpointed");
                }
            }
            return held;
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checkpoints the locked, running <paramref name="targets"/> as one cut; <paramref name="locks"/> is
    /// held until every container is thawed and the work dirs removed, even past the caller's limit.
    /// A target's archive is written to its location only once every container is thawed.
    /// </summary>
    /// <param name="subject">"container &lt;id&gt;" or "pod &lt;id&gt;", for the log lines.</param>
    private async Task<List<CheckpointResult>> CheckpointLockedAsync(IReadOnlyList<CheckpointTarget> targets, CriuDumpOptions options,
        CheckpointPhase phase, IDisposable locks, string subject, CancellationToken token)
    {
        var total = Stopwatch.StartNew();
        var captures = targets.Select(t => new Capture(t, handlers.Of(t.Record.RuntimeHandler), Path.Combine(paths.Checkpoints, $"{t.Record.Id}-{Guid.NewGuid():N}"),
            CheckpointArchive.TempPathFor(t.Location))).ToList();
        var frozen = new Stopwatch();
        Task? frozenWindow = null;
        bool finishesInBackground = false;
        try
        {
            phase.Enter("checking free space");
            CheckFreeSpace(targets);
            foreach (var capture in captures) await PrepareAsync(capture, token);

            frozenWindow = RunFrozenWindowAsync(captures, options, frozen, phase);
            await frozenWindow.WaitAsync(token);

            var results = new List<CheckpointResult>(captures.Count);
            foreach (var capture in captures)
            {
                phase.Enter($"writing the archive of container {capture.Record.Id}");
                using var archive = CheckpointArchive.Create(capture.Location, capture.TempArchive);
                using (PhaseLog.Time("checkpoint archive write", capture.Record.Id)) WriteArchive(archive, capture, options, ContainerStatusMapper.Status(capture.Record), token);
                phase.Enter($"syncing the archive of container {capture.Record.Id} to disk");
                token.ThrowIfCancellationRequested();
                long bytes;
                using (PhaseLog.Time("checkpoint archive fsync and rename", capture.Record.Id)) bytes = archive.Commit();
                results.Add(new CheckpointResult(capture.Record.Id, capture.Location, bytes, total.Elapsed, frozen.Elapsed));
            }
            return results;
        }
        catch (Exception e)
        {
            logger.LogWarning("checkpoint of {Subject} failed while {Phase} after {Elapsed:0.000} s: {Error}",
                subject, phase.Current, total.Elapsed.TotalSeconds, e.Message);
            foreach (var capture in captures) File.Delete(capture.TempArchive);
            if (frozenWindow is { IsCompleted: false })
            {
                finishesInBackground = true;
                _ = frozenWindow.ContinueWith(window =>
                {
                    RemoveWorkDirs(captures);
                    locks.Dispose();
                    logger.LogInformation("{Subject} thawed {Frozen:0.000} s after its checkpoint was frozen; the abandoned dump was discarded{Error}",
                        subject, frozen.Elapsed.TotalSeconds, window.Exception is { } error ? $" ({error.GetBaseException().Message})" : "");
                }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
            // The free-space check is an estimate (the container log, for one, is not in it), and others write too.
            if (e is IOException io && IsOutOfSpace(io)) throw new InsufficientSpaceException($"ran out of space while {phase.Current}: {e.Message}");
            throw;
        }
        finally
        {
            if (!finishesInBackground)
            {
                RemoveWorkDirs(captures);
                locks.Dispose();
            }
        }
    }

    /// <summary>.NET puts the errno of an unmapped I/O error in HResult: ENOSPC (28) or EDQUOT (122).</summary>
    private static bool IsOutOfSpace(IOException e) => e.HResult is 28 or 122;

    /// <summary>The work dir and its in-flight marker (so a restarted daemon can undo the checkpoint), and the spec.</summary>
    private async Task PrepareAsync(Capture capture, CancellationToken token)
    {
        StateDirectory.Create(capture.WorkDir);
        // crun does not create its image dir.
        StateDirectory.Create(capture.ImagesDir);
        AtomicFile.Write(Path.Combine(capture.WorkDir, InFlightFile),
            JsonSerializer.SerializeToUtf8Bytes(new CheckpointInFlight(capture.Record.Id, capture.Record.RuntimeHandler, capture.TempArchive,
                DateTimeOffset.UtcNow + DumpSafetyLimit), CheckpointJson.Default.CheckpointInFlight));
        // After the marker: a crash from here on leaves a work dir that start-up finds and unmounts.
        var placement = DumpImagesTmpfs.TryMount(capture.ImagesDir, ContainerCgroup.MemoryUsageBytes(capture.Record.Pid), CgroupReader.Host);
        logger.LogDebug("container {Id}'s CRIU images go to {Dir} {Where}: {Reason}", capture.Record.Id, capture.ImagesDir,
            placement.OnTmpfs ? $"on a tmpfs of {placement.TmpfsBytes} bytes" : "on disk", placement.Reason);
        string specText = await File.ReadAllTextAsync(Path.Combine(paths.ContainerBundle(capture.Record.Id), "config.json"), token);
        capture.Spec = JsonNode.Parse(specText)!.AsObject();
    }

    private static void RemoveWorkDirs(IEnumerable<Capture> captures)
    {
        foreach (var capture in captures)
        {
            if (!Directory.Exists(capture.WorkDir)) continue;
            DumpImagesTmpfs.DeleteWorkDir(capture.WorkDir);
        }
    }

    /// <summary>
    /// Freeze every container (in order), then dump each and capture its rootfs diff, then thaw every
    /// one: no container runs while any is captured, so the archives are one consistent cut. Never on
    /// the request's token, so it always ends with every container thawed.
    /// </summary>
    private async Task RunFrozenWindowAsync(List<Capture> captures, CriuDumpOptions options, Stopwatch frozen, CheckpointPhase phase)
    {
        var touched = new List<Capture>(captures.Count);
        frozen.Start();
        try
        {
            foreach (var capture in captures)
            {
                phase.Enter($"freezing container {capture.Record.Id}");
                // Counted before the attempt: a freeze that fails half-way must be undone too.
                touched.Add(capture);
                await FreezeAsync(capture.Runtime, capture.Record.Id, CancellationToken.None);
            }
            foreach (var capture in captures)
            {
                phase.Enter($"dumping container {capture.Record.Id} with CRIU");
                await DumpAsync(capture, options);
                phase.Enter($"capturing the rootfs diff of container {capture.Record.Id}");
                using var timing = PhaseLog.Time("checkpoint rootfs diff", capture.Record.Id);
                RootfsDiff.Capture(rootfs, capture.Record.Id, MountDestinations(capture.Spec), capture.WorkDir);
            }
        }
        finally
        {
            await ResumeAllAsync(touched);
            frozen.Stop();
        }
    }

    /// <summary>Every container is resumed even when resuming another failed; the first failure is rethrown.</summary>
    private async Task ResumeAllAsync(List<Capture> captures)
    {
        Exception? first = null;
        foreach (var capture in captures)
        {
            try
            {
                await capture.Runtime.ResumeAsync(capture.Record.Id, CancellationToken.None);
            }
            catch (Exception e)
            {
                logger.LogError("could not resume container {Id} after its checkpoint: {Error}", capture.Record.Id, e.Message);
                first ??= e;
            }
        }
        if (first is not null) throw first;
    }

    /// <summary>
    /// The CRIU images land in the state dir first (unless they fit in memory, see <see cref="DumpImagesTmpfs"/>),
    /// then in the archives: both must hold every container's.
    /// </summary>
    private void CheckFreeSpace(IReadOnlyList<CheckpointTarget> targets)
    {
        ulong needed = 0;
        foreach (var target in targets)
        {
            needed += ContainerCgroup.MemoryUsageBytes(target.Record.Pid) + rootfs.WritableLayerBytes(target.Record.Id);
        }
        ulong stateAvailable = FileSystems.StatFs(state.Root).AvailableBytes;
        foreach (string location in targets.Select(t => t.Location).Distinct())
        {
            string? existing = Path.GetDirectoryName(location);
            while (existing is not null && !Directory.Exists(existing)) existing = Path.GetDirectoryName(existing);
            ulong available = FileSystems.StatFs(existing ?? "/").AvailableBytes;
            if (available < needed || stateAvailable < needed)
            {
                string what = targets.Count == 1 ? $"container {targets[0].Record.Id}" : $"{targets.Count} containers";
                throw new InsufficientSpaceException(
                    $"not enough free space to checkpoint {what}: it needs about {needed >> 20} MiB " +
                    $"(memory plus writable layer), {location} has {available >> 20} MiB free and {state.Root} has {stateAvailable >> 20} MiB free");
            }
        }
    }

    /// <summary>
    /// cgroup v1's freezer can fail to settle while the container forks ("unable to freeze");
    /// the attempt is repeated until it holds or the checkpoint's time runs out.
    /// </summary>
    private static async Task FreezeAsync(IOciRuntime runtime, string containerId, CancellationToken token)
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

    private static async Task DumpAsync(Capture capture, CriuDumpOptions options)
    {
        try
        {
            await capture.Runtime.CheckpointAsync(capture.Record.Id, capture.ImagesDir, capture.WorkDir, options.Arguments(), DumpSafetyLimit, CancellationToken.None);
        }
        catch (ExternalCommandException e)
        {
            string log = Path.Combine(capture.WorkDir, "dump.log");
            string excerpt = File.Exists(log) ? Criu.DumpLogExcerpt(File.ReadLines(log)) : "";
            throw new InvalidOperationException(
                $"CRIU could not dump container {capture.Record.Id}: {(excerpt.Length > 0 ? excerpt : e.StandardError.Trim())}");
        }
    }

    private static List<string> MountDestinations(JsonObject spec) =>
        spec["mounts"]?.AsArray().Select(m => m?["destination"]?.GetValue<string>() ?? "").Where(d => d.Length > 0).ToList() ?? [];

    private static void WriteArchive(CheckpointArchive archive, Capture capture, CriuDumpOptions options, ContainerStatus status, CancellationToken token)
    {
        var record = capture.Record;
        archive.AddTree(capture.ImagesDir, "checkpoint", token);
        var configDump = new CheckpointConfigDump(record.Id, record.ConfigMessage.Metadata.Name, record.ImageId, record.ImageRef,
            record.ImageName, record.RuntimeHandler, DateTimeOffset.UnixEpoch.AddTicks(record.CreatedAtNanos / 100), DateTimeOffset.UtcNow,
            Restored: record.Restore is not null);
        archive.AddBytes("config.dump", JsonSerializer.SerializeToUtf8Bytes(configDump, CheckpointJson.Default.CheckpointConfigDump));
        archive.AddBytes("spec.dump", System.Text.Encoding.UTF8.GetBytes(capture.Spec.ToJsonString()));
        archive.AddBytes("bind.mounts", JsonSerializer.SerializeToUtf8Bytes(BindMounts(capture.Spec), CheckpointJson.Default.ListBindMountDump));
        archive.AddBytes(ContainerdStatusDump.FileName, ContainerdStatusDump.Of(status));
        archive.AddBytes(CriuDumpOptions.FileName, JsonSerializer.SerializeToUtf8Bytes(options, CheckpointJson.Default.CriuDumpOptions));
        foreach (string name in new[] { "stats-dump", "dump.log", RootfsDiff.TarName, RootfsDiff.DeletedName })
        {
            string path = Path.Combine(capture.WorkDir, name);
            if (File.Exists(path)) archive.AddFile(path, name, token);
        }
        // The container keeps logging while its archive is written: a snapshot of the size the header declares.
        if (File.Exists(record.LogPath)) archive.AddFileSnapshot(record.LogPath, "container.log", token);
    }

    /// <summary>The container's bind mounts minus the ones every container gets.</summary>
    internal static List<BindMountDump> BindMounts(JsonObject spec)
    {
        var result = new List<BindMountDump>();
        foreach (var mount in spec["mounts"]?.AsArray() ?? [])
        {
            if (mount?["type"]?.GetValue<string>() != "bind") continue;
            string destination = mount["destination"]!.GetValue<string>();
            string source = mount["source"]!.GetValue<string>();
            if (SpecDefaults.SystemMountDestinations.Contains(destination) || !Path.Exists(source)) continue;
            bool isDirectory = Directory.Exists(source);
            result.Add(new BindMountDump(source, destination, isDirectory ? "directory" : "file", (int)File.GetUnixFileMode(source)));
        }
        return result;
    }

    /// <summary>One container's part of the cut: its runtime, private work dir and the temp file its archive is written to.</summary>
    private sealed class Capture(CheckpointTarget target, IOciRuntime runtime, string workDir, string tempArchive)
    {
        public ContainerRecord Record => target.Record;
        public string Location => target.Location;
        public IOciRuntime Runtime => runtime;
        public string WorkDir => workDir;
        public string ImagesDir => Path.Combine(workDir, DumpImagesTmpfs.CheckpointImagesDirName);
        public string TempArchive => tempArchive;
        /// <summary>The OCI spec, read before the freeze.</summary>
        public JsonObject Spec { get; set; } = [];
    }

    private sealed class HeldLocks : IDisposable
    {
        private readonly List<IDisposable> _locks = [];

        public void Add(IDisposable held) => _locks.Add(held);

        public void Dispose()
        {
            foreach (var held in _locks) held.Dispose();
        }
    }
}
