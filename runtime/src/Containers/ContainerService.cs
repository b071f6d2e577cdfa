using System.Security.Cryptography;
using System.Text.Json;
using System.Diagnostics;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Config;
using CriShim.Runtime.Events;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Restore;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>The container lifecycle: create, start, stop, remove, status, exec, resources, logs.</summary>
public sealed class ContainerService(
    CriShimConfig config,
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    RecordStore<PodSandboxRecord> pods,
    PodLocks podLocks,
    RecordStore<ContainerRecord> containers,
    IImageLookup images,
    IRootfsService rootfs,
    ImageVolumes imageVolumes,
    ContainerEventPublisher events,
    ILogger<ContainerService> logger)
{
    private readonly KeyedLock _locks = new();
    private readonly SemaphoreSlim _createNames = new(1, 1);
    private InterruptedStart InterruptedStarts => _interruptedStarts ??= new(this, containers, handlers, monitor, events, logger);
    private InterruptedStart? _interruptedStarts;

    public static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static long NowNanos() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;

    public string BundleDir(string id) => Path.Combine(containers.DirectoryOf(id), "bundle");

    private string ImageVolumesDir(string id) => Path.Combine(containers.DirectoryOf(id), "image-volumes");

    /// <summary>Serialises an operation on the container (e.g. a checkpoint) with its lifecycle calls.</summary>
    public Task<IDisposable> LockAsync(string id, CancellationToken cancellationToken) => _locks.AcquireAsync(id, cancellationToken);

    public IEnumerable<ContainerRecord> OfPod(string podId) => containers.All.Where(c => c.PodId == podId);

    /// <summary>Finds a container by id or unique prefix, with its exit noticed.</summary>
    public ContainerRecord Get(string id)
    {
        var record = containers.Resolve(id) ?? throw new NotFoundException($"container \"{id}\" not found");
        Refresh(record);
        return record;
    }

    public Task<string> CreateAsync(string podId, ContainerConfig containerConfig, CancellationToken cancellationToken) =>
        CreateAsync(podId, containerConfig, restore: null, cancellationToken);

    /// <param name="restore">When set, the container is created from a checkpoint and restored by StartContainer.</param>
    public async Task<string> CreateAsync(string podId, ContainerConfig containerConfig, RestoreSource? restore, CancellationToken cancellationToken)
    {
        if (containerConfig.Metadata is not { Name.Length: > 0 }) throw new InvalidRequestException("container metadata.name must be set");
        if (containerConfig.Image is not { Image.Length: > 0 }) throw new InvalidRequestException("container image must be set");
        if (containerConfig.Linux?.SecurityContext is { RunAsGroup: not null, RunAsUser: null, RunAsUsername.Length: 0 })
        {
            // As containerd: a group alone would silently pair with the image's user.
            throw new InvalidRequestException("run_as_group is set without run_as_user or run_as_username");
        }
        var pod = pods.Resolve(podId) ?? throw new NotFoundException($"pod sandbox \"{podId}\" not found");
        // Held until the container exists, so RemovePodSandbox cannot slip in between and orphan it.
        using var podLock = await podLocks.AcquireAsync(pod.Id, cancellationToken);
        if (pods.Get(pod.Id) is null) throw new NotFoundException($"pod sandbox {pod.Id} was removed");
        if (!pod.Ready) throw new WrongStateException($"pod sandbox {pod.Id} is not ready");
        // Its namespaces are the infra process's (and a dead pod's netns path may be gone or reused after a reboot).
        if (!pod.IsInfraAlive()) throw new WrongStateException($"pod sandbox {pod.Id} is not ready: its infra process is gone");
        var image = restore?.Image ?? images.Find(containerConfig.Image.Image)
            ?? throw new NotFoundException($"image \"{containerConfig.Image.Image}\" not found: pull it first");
        var volumeImages = new Dictionary<Mount, StoredImage>();
        foreach (var mount in containerConfig.Mounts.Where(ImageVolumes.IsImageVolume)) volumeImages[mount] = imageVolumes.ImageOf(mount);
        if (!handlers.TryGet(pod.RuntimeHandler, out var runtime))
        {
            throw new InvalidRequestException($"runtime handler \"{pod.RuntimeHandler}\" is not configured");
        }

        string id = NewId();
        await _createNames.WaitAsync(cancellationToken);
        ContainerRecord record;
        try
        {
            var metadata = containerConfig.Metadata;
            var holder = OfPod(pod.Id).FirstOrDefault(c =>
                c.ConfigMessage.Metadata.Name == metadata.Name && c.ConfigMessage.Metadata.Attempt == metadata.Attempt);
            if (holder is not null)
            {
                throw new AlreadyExistsException(
                    $"container name \"{metadata.Name}\" attempt {metadata.Attempt} in pod {pod.Id} is already used by container {holder.Id}");
            }
            var podConfig = pod.ConfigMessage;
            string logPath = podConfig.LogDirectory.Length > 0 && containerConfig.LogPath.Length > 0
                ? LogPathIn(podConfig.LogDirectory, containerConfig.LogPath)
                : Path.Combine(containers.DirectoryOf(id), "container.log");
            record = new ContainerRecord
            {
                Id = id,
                PodId = pod.Id,
                Config = containerConfig.ToByteArray(),
                ImageId = image.Id,
                ImageName = containerConfig.Image.Image,
                ImageRef = image.RepoDigests.FirstOrDefault() ?? image.Id,
                ImageVolumeIds = [.. volumeImages.Values.Select(i => i.Id).Distinct()],
                RuntimeHandler = runtime.Handler,
                CreatedAtNanos = NowNanos(),
                LogPath = logPath,
                StopSignal = StopSignal(containerConfig, image),
                Resources = (containerConfig.Linux?.Resources ?? new LinuxContainerResources()).ToByteArray(),
            };
            // Saved first, so a crash mid-create leaves a record that RemoveContainer can clean up.
            containers.Save(record);
        }
        finally
        {
            _createNames.Release();
        }

        using var _ = await _locks.AcquireAsync(id, cancellationToken);
        try
        {
            await CreateInRuntimeAsync(record, pod, image, volumeImages, runtime, restore, CancellationToken.None);
            events.Publish(ContainerEventType.ContainerCreatedEvent, id, pod.Id);
            return id;
        }
        catch
        {
            await RemoveEverythingAsync(record, CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// The container's log file: log_path relative to the pod's log_directory, never outside it, as conmon
    /// (host root) creates and writes whatever file it is given.
    /// </summary>
    internal static string LogPathIn(string logDirectory, string logPath)
    {
        if (Path.IsPathRooted(logPath) || logPath.Contains('\0') || logPath.Split('/').Contains(".."))
        {
            throw new InvalidRequestException($"log_path \"{logPath}\" must be a relative path inside the pod's log directory, without \"..\"");
        }
        return Path.Combine(logDirectory, logPath);
    }

    private static string StopSignal(ContainerConfig config, StoredImage image)
    {
        if (config.StopSignal != Signal.RuntimeDefault) return config.StopSignal.ToString().Replace("Sig", "SIG", StringComparison.Ordinal).ToUpperInvariant();
        if (image.Config.StopSignal.Length > 0)
        {
            Signals.Parse(image.Config.StopSignal);
            return image.Config.StopSignal;
        }
        return "SIGTERM";
    }

    private async Task CreateInRuntimeAsync(ContainerRecord record, PodSandboxRecord pod, StoredImage image,
        Dictionary<Mount, StoredImage> volumeImages, IOciRuntime runtime, RestoreSource? restore, CancellationToken cancellationToken)
    {
        var containerConfig = record.ConfigMessage;
        var userNamespace = PodUserNamespace.Of(pod.ConfigMessage);
        var idMap = userNamespace?.RootfsIdMap(pod.InfraPid);
        // The pod's root reaches the container's volumes from inside its namespace.
        userNamespace?.OpenStateTo(paths, containers.DirectoryOf(record.Id));
        string rootfsPath = await rootfs.MountAsync(record.Id, image, cancellationToken, idMap);
        // Before the user is resolved: the checkpointed /etc/passwd is the one the processes knew.
        if (restore is not null) await restore.ApplyToRootfsAsync(rootfsPath, cancellationToken);
        var security = containerConfig.Linux?.SecurityContext ?? new LinuxContainerSecurityContext();
        var user = ContainerUserResolver.Resolve(rootfsPath, security.RunAsUser?.Value, security.RunAsUsername,
            security.RunAsGroup?.Value, image.Config.User, security.SupplementalGroups,
            security.SupplementalGroupsPolicy == SupplementalGroupsPolicy.Strict);
        record.User = new ContainerIdentity(user.Uid, user.Gid, [user.Gid, .. user.AdditionalGids]);
        string bundle = BundleDir(record.Id);
        StateDirectory.Create(bundle);
        var features = await runtime.FeaturesAsync();
        var imageVolumeSources = volumeImages.ToDictionary(v => v.Key, v => imageVolumes.Mount(ImageVolumesDir(record.Id), v.Value, v.Key.ImageSubPath, idMap));
        var spec = ContainerSpecBuilder.Build(new ContainerSpecInput(record.Id, containerConfig, pod, pods.DirectoryOf(pod.Id),
            image, rootfsPath, Path.Combine(containers.DirectoryOf(record.Id), "volumes"), user, config.Runtime.CgroupDriver,
            config.Checkpoint.CriuConfig, features.RecursiveReadOnlyMounts, features.IdMappedMounts, imageVolumeSources,
            TargetContainerPid(security.NamespaceOptions, pod), config.Runtime.AllowedAnnotations,
            Cdi.CdiDevices.Resolve(containerConfig, config.Cdi.SpecDirs)));
        AtomicFile.WriteText(Path.Combine(bundle, "config.json"), spec.ToJsonString());
        Directory.CreateDirectory(Path.GetDirectoryName(record.LogPath)!);
        var metadata = containerConfig.Metadata;
        if (restore is not null)
        {
            // As CRI-O: the runtime first hears of a restored container at StartContainer, from `restore`.
            record.Restore = restore.Adopt(containers.DirectoryOf(record.Id), record.LogPath);
            containers.Save(record);
            logger.LogInformation("created container {Id} ({Name}) in pod {Pod} from checkpoint {Archive}", record.Id, metadata.Name, pod.Id, record.Restore.Archive);
            return;
        }
        record.Pid = await monitor.CreateAsync(Launch(record, runtime), cancellationToken);
        record.Init = ProcessIdentity.Of(record.Pid)
            ?? throw new ContainerCreateException($"the process of container {record.Id} ended before it was started");
        record.Monitor = monitor.MonitorOf(bundle)
            ?? throw new ContainerCreateException($"conmon of container {record.Id} exited right after creating it");
        containers.Save(record);
        logger.LogInformation("created container {Id} ({Name}) in pod {Pod}", record.Id, metadata.Name, pod.Id);
    }

    private ConmonLaunch Launch(ContainerRecord record, IOciRuntime runtime)
    {
        var containerConfig = record.ConfigMessage;
        var metadata = containerConfig.Metadata;
        return new ConmonLaunch(record.Id, $"{metadata.Name}_{metadata.Attempt}", BundleDir(record.Id), runtime,
            record.LogPath, paths.ExitDir, paths.ConmonSockets, config.Runtime.CgroupDriver == "systemd",
            containerConfig.Stdin, containerConfig.StdinOnce, containerConfig.Tty);
    }

    /// <summary>
    /// StartContainer of a container created from a checkpoint: conmon runs `runc|crun restore` with its
    /// CRIU images, so its processes continue where they were dumped. When CRIU fails, the half-made
    /// container is removed and the error quotes restore.log.
    /// </summary>
    private async Task RestoreAsync(ContainerRecord record, ContainerRestoreState restore)
    {
        var clock = Stopwatch.StartNew();
        var runtime = handlers.Of(record.RuntimeHandler);
        string bundle = BundleDir(record.Id);
        try
        {
            record.Pid = await monitor.CreateAsync(Launch(record, runtime) with
            {
                RestoreImagesDir = restore.ImagesDir,
                RuntimeOptions = ["--file-locks", .. CriuDumpOptions.From(config.Checkpoint).Arguments()],
            }, CancellationToken.None);
        }
        catch (Exception e) when (e is ContainerCreateException or ExternalCommandException)
        {
            // conmon's work path for the runtime is the bundle.
            string log = Path.Combine(bundle, "restore.log");
            string excerpt = File.Exists(log) ? Criu.DumpLogExcerpt(File.ReadLines(log)) : "";
            await RemoveEverythingAsync(record, CancellationToken.None);
            events.Publish(ContainerEventType.ContainerDeletedEvent, record.Id, record.PodId);
            throw new InvalidOperationException(
                $"CRIU could not restore container {record.Id} from {restore.Archive}; the container was removed: {(excerpt.Length > 0 ? excerpt : e.Message)}");
        }
        // A restored process may end at once: its exit file then tells.
        record.Init = ProcessIdentity.Of(record.Pid);
        record.Monitor = monitor.MonitorOf(bundle);
        record.Restore = restore with { RestoredAtNanos = NowNanos() };
        logger.LogInformation("restored container {Id} from {Archive} (checkpointed container {Original}) in {Elapsed:0.000} s",
            record.Id, restore.Archive, restore.CheckpointedContainerId, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The pid whose namespace a TARGET-mode container joins: a running container of the same pod.</summary>
    private int TargetContainerPid(NamespaceOption? namespaces, PodSandboxRecord pod)
    {
        if (namespaces is not { Pid: NamespaceMode.Target }) return 0;
        if (namespaces.TargetId.Length == 0) throw new InvalidRequestException("pid namespace mode TARGET needs target_id");
        var target = Get(namespaces.TargetId);
        if (target.PodId != pod.Id)
        {
            throw new InvalidRequestException($"target container {target.Id} is not in pod {pod.Id}");
        }
        if (target.State != ContainerState.ContainerRunning || target.Pid <= 0)
        {
            throw new WrongStateException($"target container {target.Id} is {Describe(target.State)}, not running");
        }
        return target.Pid;
    }

    public async Task StartAsync(string id, CancellationToken cancellationToken)
    {
        var record = Get(id);
        using var _ = await _locks.AcquireAsync(record.Id, cancellationToken);
        await ReconcileWithRuntimeAsync(record, cancellationToken);
        if (record.State != ContainerState.ContainerCreated)
        {
            throw new WrongStateException($"container {record.Id} is {Describe(record.State)}, not created: it can be started only once");
        }
        if (record.StartingAtNanos != 0) throw new WrongStateException($"container {record.Id} is still being started by a start that a daemon restart cut short");
        // Before the runtime is launched: a daemon killed from here on leaves the start for InterruptedStart to settle.
        record.StartingAtNanos = NowNanos();
        containers.Save(record);
        try
        {
            if (record.Restore is { } restore) await RestoreAsync(record, restore);
            else await handlers.Of(record.RuntimeHandler).StartAsync(record.Id, CancellationToken.None);
        }
        catch (ExternalCommandException e)
        {
            record.State = ContainerState.ContainerExited;
            record.FinishedAtNanos = NowNanos();
            record.ExitCode = 128;
            record.Reason = "StartError";
            record.Message = e.StandardError.Trim();
            record.StartingAtNanos = 0;
            containers.Save(record);
            events.Publish(ContainerEventType.ContainerStoppedEvent, record.Id, record.PodId);
            throw;
        }
        // A status call racing this start may already have seen a process that exited at once:
        // the exit stands, and only the start time is filled in.
        bool running;
        lock (record)
        {
            running = record.State == ContainerState.ContainerCreated;
            record.StartedAtNanos = running ? NowNanos() : Math.Min(NowNanos(), record.FinishedAtNanos);
            if (running) record.State = ContainerState.ContainerRunning;
            record.StartingAtNanos = 0;
            containers.Save(record);
        }
        if (running) events.Publish(ContainerEventType.ContainerStartedEvent, record.Id, record.PodId);
        // A process that exits at once may already have left its exit file.
        Refresh(record);
    }

    private static string Describe(ContainerState state) => state switch
    {
        ContainerState.ContainerCreated => "created",
        ContainerState.ContainerRunning => "running",
        ContainerState.ContainerExited => "exited",
        _ => "in an unknown state",
    };

    /// <summary>Stops with the stop signal, then SIGKILL after <paramref name="timeoutSeconds"/>; idempotent.</summary>
    /// <summary>Idempotent as the CRI demands: an unknown or already removed container is already stopped.</summary>
    public async Task StopAsync(string id, long timeoutSeconds, CancellationToken cancellationToken)
    {
        var record = containers.Resolve(id);
        if (record is null) return;
        using var _ = await _locks.AcquireAsync(record.Id, cancellationToken);
        if (containers.Get(record.Id) is null) return;
        await StopLockedAsync(record, timeoutSeconds, cancellationToken);
    }

    private async Task StopLockedAsync(ContainerRecord record, long timeoutSeconds, CancellationToken cancellationToken)
    {
        await ReconcileWithRuntimeAsync(record, cancellationToken);
        if (record.State == ContainerState.ContainerExited) return;
        var runtime = handlers.Of(record.RuntimeHandler);
        if (record.State == ContainerState.ContainerCreated)
        {
            // Never started: there is no user process to be gentle with.
            await runtime.KillAsync(record.Id, Signals.Kill, all: true, CancellationToken.None);
        }
        else if (timeoutSeconds > 0)
        {
            await runtime.KillAsync(record.Id, Signals.Parse(record.StopSignal), all: false, CancellationToken.None);
            if (await WaitForExitAsync(record, TimeSpan.FromSeconds(timeoutSeconds), cancellationToken)) return;
            logger.LogInformation("container {Id} ignored {Signal} for {Timeout}s; killing it", record.Id, record.StopSignal, timeoutSeconds);
        }
        await runtime.KillAsync(record.Id, Signals.Kill, all: true, CancellationToken.None);
        if (!await WaitForExitAsync(record, TimeSpan.FromSeconds(30), CancellationToken.None))
        {
            throw new TimeoutException($"container {record.Id} did not exit 30 s after SIGKILL");
        }
    }

    private async Task<bool> WaitForExitAsync(ContainerRecord record, TimeSpan limit, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < deadline)
        {
            // A created container that was killed never gets an exit file from conmon's create path.
            if (record.State == ContainerState.ContainerCreated && !record.IsInitAlive())
            {
                MarkExited(record, 137, "Error", "killed before it was started");
                return true;
            }
            Refresh(record);
            if (record.State == ContainerState.ContainerExited) return true;
            await Task.Delay(50, cancellationToken);
        }
        return false;
    }

    /// <summary>Removes a container in any state; unknown ids succeed, as the CRI requires.</summary>
    public async Task RemoveAsync(string id, CancellationToken cancellationToken)
    {
        var record = containers.Resolve(id);
        if (record is null) return;
        using var _ = await _locks.AcquireAsync(record.Id, cancellationToken);
        if (containers.Get(record.Id) is null) return;
        await RemoveEverythingAsync(record, cancellationToken);
        events.Publish(ContainerEventType.ContainerDeletedEvent, record.Id, record.PodId);
    }

    private async Task RemoveEverythingAsync(ContainerRecord record, CancellationToken cancellationToken)
    {
        if (handlers.TryGet(record.RuntimeHandler, out var runtime))
        {
            await runtime.DeleteAsync(record.Id, cancellationToken);
        }
        await rootfs.RemoveAsync(record.Id, cancellationToken);
        imageVolumes.RemoveAll(ImageVolumesDir(record.Id));
        monitor.Forget(record.Id);
        containers.Delete(record.Id);
        logger.LogInformation("removed container {Id}", record.Id);
    }

    /// <summary>
    /// Notices an exit recorded by conmon (also one that happened while the daemon was down), and an
    /// exit no exit file will ever report: conmon died (killed, or the node rebooted) and the
    /// container's process is gone too. A process that outlived its conmon still runs: StopContainer
    /// kills it through the runtime.
    /// </summary>
    public void Refresh(ContainerRecord record)
    {
        if (record.State == ContainerState.ContainerExited || NoticeExitFile(record)) return;
        if (!IsUnmonitored(record)) return;
        // conmon writes the exit file and then exits: one written just before this look counts.
        if (NoticeExitFile(record) || record.IsInitAlive()) return;
        MarkExited(record, 255, "Error", "conmon died; the container process is gone");
    }

    /// <summary>
    /// <see cref="Refresh"/>, and for a container whose conmon died while its recorded process still runs, the OCI
    /// runtime's view too: a runtime that reports the container stopped, or no longer knows it, has the last word.
    /// Status and list calls only <see cref="Refresh"/> (synchronous, no process spawned); Stop and the exit
    /// watcher (whose first scan is the start-up one) ask the runtime. A runtime that fails or hangs past its short
    /// timeout leaves the container as Refresh found it: Stop then kills the process and the exit is recorded.
    /// A start that a daemon kill cut short is settled first (<see cref="InterruptedStart"/>).
    /// </summary>
    public async Task ReconcileWithRuntimeAsync(ContainerRecord record, CancellationToken cancellationToken)
    {
        if (!await InterruptedStarts.SettleAsync(record, cancellationToken)) return;
        Refresh(record);
        if (!IsUnmonitored(record)) return;
        var runtime = handlers.Of(record.RuntimeHandler);
        OciState? state;
        try
        {
            state = await runtime.StateAsync(record.Id, cancellationToken);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            logger.LogWarning("container {Id}: conmon died and {Handler} state failed: {Error}", record.Id, runtime.Handler, e.Message);
            return;
        }
        string? found = state is null ? $"{runtime.Handler} does not know the container"
            : state.Status == "stopped" ? $"{runtime.Handler} reports the container stopped"
            : null;
        if (found is not null) MarkExited(record, 255, "Error", $"conmon died; {found}");
    }

    /// <summary>conmon is gone while the container has not exited: no exit file will come.</summary>
    public static bool IsUnmonitored(ContainerRecord record) =>
        record.State != ContainerState.ContainerExited && record.Monitor is { } monitor && !monitor.IsAlive();

    private bool NoticeExitFile(ContainerRecord record)
    {
        if (monitor.ExitOf(record.Id, BundleDir(record.Id)) is not { } exit) return false;
        string reason = exit.OomKilled ? "OOMKilled" : exit.ExitCode == 0 ? "Completed" : "Error";
        MarkExited(record, exit.ExitCode, reason, "", exit.AtUtc);
        return true;
    }

    internal void MarkExited(ContainerRecord record, int exitCode, string reason, string message, DateTime? at = null)
    {
        // Status and list calls refresh without the container's lock: only the first to notice reports the exit.
        lock (record)
        {
            if (record.State == ContainerState.ContainerExited) return;
            record.State = ContainerState.ContainerExited;
            record.StartingAtNanos = 0;
            record.ExitCode = exitCode;
            record.Reason = reason;
            record.Message = message;
            record.FinishedAtNanos = at is { } time ? (new DateTimeOffset(time) - DateTimeOffset.UnixEpoch).Ticks * 100 : NowNanos();
            containers.Save(record);
        }
        events.Publish(ContainerEventType.ContainerStoppedEvent, record.Id, record.PodId);
    }

    /// <summary>ContainerStatus annotations of a container created from a checkpoint.</summary>
    public const string RestoredAnnotation = "io.crishim.restored";
    public const string RestoredFromAnnotation = "io.crishim.restored-from";

    public ContainerStatus Status(ContainerRecord record)
    {
        var containerConfig = record.ConfigMessage;
        var status = new ContainerStatus
        {
            Id = record.Id,
            Metadata = containerConfig.Metadata,
            State = record.State,
            CreatedAt = record.CreatedAtNanos,
            StartedAt = record.StartedAtNanos,
            FinishedAt = record.FinishedAtNanos,
            ExitCode = record.ExitCode,
            Image = new ImageSpec { Image = record.ImageName, UserSpecifiedImage = record.ImageName },
            ImageRef = record.ImageRef,
            ImageId = record.ImageId,
            Reason = record.Reason,
            Message = record.Message,
            LogPath = record.LogPath,
            Resources = new ContainerResources { Linux = LinuxContainerResources.Parser.ParseFrom(record.Resources) },
        };
        status.Labels.Add(containerConfig.Labels);
        status.Annotations.Add(containerConfig.Annotations);
        if (record.Restore is { } restore)
        {
            status.Annotations[RestoredAnnotation] = "true";
            status.Annotations[RestoredFromAnnotation] = restore.Archive;
        }
        foreach (var mount in containerConfig.Mounts) status.Mounts.Add(mount);
        if (record.User is { } user)
        {
            status.User = new ContainerUser
            {
                Linux = new LinuxContainerUser { Uid = user.Uid, Gid = user.Gid, SupplementalGroups = { user.SupplementalGroups } },
            };
        }
        return status;
    }

    public Dictionary<string, string> VerboseInfo(ContainerRecord record)
    {
        string specPath = Path.Combine(BundleDir(record.Id), "config.json");
        string spec = File.Exists(specPath) ? File.ReadAllText(specPath) : "{}";
        var info = new VerboseContainerInfo(record.Id, record.PodId, record.Pid, record.RuntimeHandler, BundleDir(record.Id),
            JsonDocument.Parse(spec).RootElement);
        return new Dictionary<string, string> { ["info"] = JsonSerializer.Serialize(info, ContainerInfoJson.Default.VerboseContainerInfo) };
    }

    public IEnumerable<ContainerRecord> List(ContainerFilter? filter)
    {
        foreach (var record in containers.All.ToList())
        {
            Refresh(record);
            if (filter is not null)
            {
                if (filter.Id.Length > 0 && !record.Id.StartsWith(filter.Id, StringComparison.Ordinal)) continue;
                if (filter.State is not null && record.State != filter.State.State) continue;
                if (filter.PodSandboxId.Length > 0 && !record.PodId.StartsWith(filter.PodSandboxId, StringComparison.Ordinal)) continue;
                if (!LabelSelector.Matches(record.ConfigMessage.Labels, filter.LabelSelector)) continue;
            }
            yield return record;
        }
    }

    /// <summary>What ExecSync keeps of each of stdout and stderr, as CRI-O; the rest is read and dropped.</summary>
    public const int ExecSyncOutputLimit = 16 * 1024 * 1024;

    public async Task<ExecSyncResponse> ExecSyncAsync(string id, IReadOnlyList<string> command, long timeoutSeconds, CancellationToken cancellationToken)
    {
        ProcessArguments.Validate(command, "cmd");
        var record = Get(id);
        if (record.State != ContainerState.ContainerRunning)
        {
            throw new WrongStateException($"container {record.Id} is {Describe(record.State)}, not running");
        }
        StateDirectory.Create(paths.Exec);
        string pidFile = Path.Combine(paths.Exec, $"{record.Id}-{NewId()[..12]}.pid");
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
        var record = Get(id);
        using var _ = await _locks.AcquireAsync(record.Id, cancellationToken);
        Refresh(record);
        if (record.State == ContainerState.ContainerExited)
        {
            throw new WrongStateException($"container {record.Id} has exited; its resources cannot change");
        }
        string json = ContainerSpecBuilder.UpdatableResources(resources).ToJsonString();
        await handlers.Of(record.RuntimeHandler).UpdateResourcesAsync(record.Id, json, cancellationToken);
        record.Resources = resources.ToByteArray();
        containers.Save(record);
    }

    public async Task ReopenLogAsync(string id, CancellationToken cancellationToken)
    {
        var record = Get(id);
        if (record.State != ContainerState.ContainerRunning)
        {
            throw new WrongStateException($"container {record.Id} is {Describe(record.State)}, not running");
        }
        await monitor.ReopenLogAsync(BundleDir(record.Id), record.LogPath, cancellationToken);
    }

    /// <summary>For StopPodSandbox: every container of the pod, killed at once.</summary>
    public async Task StopAllOfPodAsync(string podId, CancellationToken cancellationToken)
    {
        foreach (var record in OfPod(podId).ToList())
        {
            using var _ = await _locks.AcquireAsync(record.Id, cancellationToken);
            await StopLockedAsync(record, 0, cancellationToken);
        }
    }

    public async Task RemoveAllOfPodAsync(string podId, CancellationToken cancellationToken)
    {
        foreach (var record in OfPod(podId).ToList()) await RemoveAsync(record.Id, cancellationToken);
    }
}

public sealed record VerboseContainerInfo(string Id, string SandboxId, int Pid, string RuntimeHandler, string Bundle, JsonElement RuntimeSpec);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(VerboseContainerInfo))]
internal sealed partial class ContainerInfoJson : System.Text.Json.Serialization.JsonSerializerContext;
