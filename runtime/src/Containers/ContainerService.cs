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

/// <summary>
/// The container lifecycle: create, start, stop, remove. Reads are <see cref="ContainerLookup"/>'s, exits
/// <see cref="ContainerExitRecorder"/>'s, exec, logs and resources <see cref="ContainerOperations"/>'s.
/// </summary>
public sealed class ContainerService(
    RuntimeConfigSection runtimeConfig,
    CheckpointConfig checkpointConfig,
    CdiConfig cdiConfig,
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    IIdSource ids,
    TimeProvider time,
    RecordStore<PodSandboxRecord> pods,
    PodLocks podLocks,
    RecordStore<ContainerRecord> containers,
    ContainerLocks locks,
    ContainerLookup lookup,
    ContainerExitRecorder exits,
    IImageLookup images,
    IRootfsService rootfs,
    ImageVolumes imageVolumes,
    ContainerEventPublisher events,
    ILogger<ContainerService> logger)
{
    private readonly SemaphoreSlim _createNames = new(1, 1);

    private string ImageVolumesDir(string id) => Path.Combine(containers.DirectoryOf(id), "image-volumes");

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
        var pod = RequireReadyPod(podId);
        // Held until the container exists, so RemovePodSandbox cannot slip in between and orphan it.
        using var podLock = await podLocks.AcquireAsync(pod.Id, cancellationToken);
        pod = RequireReadyPod(pod.Id);
        var image = restore?.Image ?? images.Find(containerConfig.Image.Image)
            ?? throw new NotFoundException($"image \"{containerConfig.Image.Image}\" not found: pull it first");
        CheckpointImages.RequireRootfsImage(image, $"image \"{containerConfig.Image.Image}\"");
        var volumeImages = new Dictionary<Mount, StoredImage>();
        foreach (var mount in containerConfig.Mounts.Where(ImageVolumes.IsImageVolume)) volumeImages[mount] = imageVolumes.ImageOf(mount);
        if (!handlers.TryGet(pod.RuntimeHandler, out var runtime))
        {
            throw new InvalidRequestException($"runtime handler \"{pod.RuntimeHandler}\" is not configured");
        }

        string id = ids.NewId();
        await _createNames.WaitAsync(cancellationToken);
        ContainerRecord record;
        try
        {
            var metadata = containerConfig.Metadata;
            var holder = lookup.OfPod(pod.Id).FirstOrDefault(c =>
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
                CreatedAtNanos = time.Now(),
                LogPath = logPath,
                StopSignal = StopSignal(containerConfig, image),
                Resources = (containerConfig.Linux?.Resources ?? new LinuxContainerResources()).ToByteArray(),
            };
            // Saved first, so a crash mid-create leaves a record that RemoveContainer can clean up.
            containers.Add(record);
        }
        finally
        {
            _createNames.Release();
        }

        using var _ = await locks.AcquireAsync(id, cancellationToken);
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

    /// <summary>The pod a container is created in: it must exist (NOT_FOUND) and be ready (FAILED_PRECONDITION).</summary>
    public PodSandboxRecord RequireReadyPod(string podId)
    {
        var pod = pods.Resolve(podId) ?? throw new NotFoundException($"pod sandbox \"{podId}\" not found");
        if (!pod.Ready) throw new WrongStateException($"pod sandbox {pod.Id} is not ready");
        // Its namespaces are the infra process's (and a dead pod's netns path may be gone or reused after a reboot).
        if (!pod.IsInfraAlive()) throw new WrongStateException($"pod sandbox {pod.Id} is not ready: its infra process is gone");
        return pod;
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
        var identity = new ContainerIdentity(user.Uid, user.Gid, [user.Gid, .. user.AdditionalGids]);
        string bundle = paths.ContainerBundle(record.Id);
        StateDirectory.Create(bundle);
        var features = await runtime.FeaturesAsync();
        var imageVolumeSources = volumeImages.ToDictionary(v => v.Key, v => imageVolumes.Mount(ImageVolumesDir(record.Id), v.Value, v.Key.ImageSubPath, idMap));
        string volumesDir = Path.Combine(containers.DirectoryOf(record.Id), "volumes");
        var spec = ContainerSpecBuilder.Build(new ContainerSpecInput(record.Id, containerConfig, pod, pods.DirectoryOf(pod.Id),
            image, rootfsPath, volumesDir, user, runtimeConfig.CgroupDriver,
            checkpointConfig.CriuConfig, features.RecursiveReadOnlyMounts, features.IdMappedMounts, imageVolumeSources,
            TargetContainerPid(security.NamespaceOptions, pod), runtimeConfig.AllowedAnnotations,
            Cdi.CdiDevices.Resolve(containerConfig, cdiConfig.SpecDirs), ContainerBundle.ReadHostInputs(containerConfig)));
        ContainerBundle.Prepare(spec, volumesDir, bundle, userNamespace);
        Directory.CreateDirectory(Path.GetDirectoryName(record.LogPath)!);
        var metadata = containerConfig.Metadata;
        if (restore is not null)
        {
            // As CRI-O: the runtime first hears of a restored container at StartContainer, from `restore`.
            var adopted = restore.Adopt(containers.DirectoryOf(record.Id), record.LogPath);
            containers.Update(record.Id, current => current with { User = identity, Restore = adopted });
            logger.LogInformation("created container {Id} ({Name}) in pod {Pod} from checkpoint {Archive}", record.Id, metadata.Name, pod.Id, adopted.Archive);
            return;
        }
        int pid = await monitor.CreateAsync(Launch(record, runtime), cancellationToken);
        var init = ProcessIdentity.Of(pid)
            ?? throw new ContainerCreateException($"the process of container {record.Id} ended before it was started");
        var conmon = monitor.MonitorOf(bundle)
            ?? throw new ContainerCreateException($"conmon of container {record.Id} exited right after creating it");
        containers.Update(record.Id, current => current with { User = identity, Pid = pid, Init = init, Monitor = conmon });
        logger.LogInformation("created container {Id} ({Name}) in pod {Pod}", record.Id, metadata.Name, pod.Id);
    }

    private ConmonLaunch Launch(ContainerRecord record, IOciRuntime runtime)
    {
        var containerConfig = record.ConfigMessage;
        var metadata = containerConfig.Metadata;
        return new ConmonLaunch(record.Id, $"{metadata.Name}_{metadata.Attempt}", paths.ContainerBundle(record.Id), runtime,
            record.LogPath, runtimeConfig.CgroupDriver == "systemd",
            containerConfig.Stdin, containerConfig.StdinOnce, containerConfig.Tty);
    }

    /// <summary>
    /// StartContainer of a container created from a checkpoint: conmon runs `runc|crun restore` with its
    /// CRIU images, so its processes continue where they were dumped. When CRIU fails, the half-made
    /// container is removed and the error quotes restore.log.
    /// </summary>
    /// <returns>The container with its restored process recorded.</returns>
    private async Task<ContainerRecord> RestoreAsync(ContainerRecord record, ContainerRestoreState restore)
    {
        var clock = Stopwatch.StartNew();
        var runtime = handlers.Of(record.RuntimeHandler);
        string bundle = paths.ContainerBundle(record.Id);
        int pid;
        try
        {
            pid = await monitor.CreateAsync(Launch(record, runtime) with
            {
                RestoreImagesDir = restore.ImagesDir,
                // The dump's options, never the daemon's current configuration: CRIU restores only what they dumped.
                RuntimeOptions = ["--file-locks", .. (restore.DumpOptions ?? CheckpointedConnections.InferDumpOptions(CheckpointedConnections.Read(restore.ImagesDir))).Arguments()],
            }, CancellationToken.None);
        }
        catch (Exception e) when (e is ContainerCreateException or ExternalCommandException or TimeoutException)
        {
            // conmon's work path for the runtime is the bundle, which the removal takes. A restore that ran
            // past its limit may still be going: the removal's `delete --force` ends it, and the timeout stands.
            var failure = e is TimeoutException ? null : CriuRestoreFailure.Of(record.Id, restore.Archive, Path.Combine(bundle, "restore.log"), e.Message);
            await RemoveEverythingAsync(record, CancellationToken.None);
            events.Publish(ContainerEventType.ContainerDeletedEvent, record.Id, record.PodId);
            if (failure is null) throw;
            throw failure;
        }
        // A restored process may end at once: its exit file then tells.
        var init = ProcessIdentity.Of(pid);
        var conmon = monitor.MonitorOf(bundle);
        restore.DeleteImages();
        logger.LogInformation("restored container {Id} from {Archive} (checkpointed container {Original}) in {Elapsed:0.000} s",
            record.Id, restore.Archive, restore.CheckpointedContainerId, clock.Elapsed.TotalSeconds);
        return containers.Update(record.Id, current => current with { Pid = pid, Init = init, Monitor = conmon });
    }

    /// <summary>The pid whose namespace a TARGET-mode container joins: a running container of the same pod.</summary>
    private int TargetContainerPid(NamespaceOption? namespaces, PodSandboxRecord pod)
    {
        if (namespaces is not { Pid: NamespaceMode.Target }) return 0;
        if (namespaces.TargetId.Length == 0) throw new InvalidRequestException("pid namespace mode TARGET needs target_id");
        var target = lookup.Get(namespaces.TargetId);
        if (target.PodId != pod.Id)
        {
            throw new InvalidRequestException($"target container {target.Id} is not in pod {pod.Id}");
        }
        if (target.State != ContainerState.ContainerRunning || target.Pid <= 0)
        {
            throw new WrongStateException($"target container {target.Id} is {ContainerStatusMapper.Describe(target.State)}, not running");
        }
        return target.Pid;
    }

    public async Task StartAsync(string id, CancellationToken cancellationToken)
    {
        var record = lookup.Get(id);
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        record = await exits.ReconcileWithRuntimeAsync(record, cancellationToken);
        if (record.State != ContainerState.ContainerCreated)
        {
            throw new WrongStateException($"container {record.Id} is {ContainerStatusMapper.Describe(record.State)}, not created: it can be started only once");
        }
        if (record.StartingAtNanos != 0) throw new WrongStateException($"container {record.Id} is still being started by a start that a daemon restart cut short");
        // Before the runtime is launched: a daemon killed from here on leaves the start for InterruptedStart to settle.
        record = containers.Update(record.Id, current => current with { StartingAtNanos = time.Now() });
        try
        {
            if (record.Restore is { } restore) record = await RestoreAsync(record, restore);
            else await handlers.Of(record.RuntimeHandler).StartAsync(record.Id, CancellationToken.None);
        }
        catch (ExternalCommandException e)
        {
            exits.RecordExit(record, 128, "StartError", e.StandardError.Trim());
            throw;
        }
        catch (TimeoutException e) when (record.Restore is null)
        {
            // `start` was killed midway: whether the process runs is unknown, so it is killed and the start failed.
            await handlers.Of(record.RuntimeHandler).KillAsync(record.Id, Signals.Kill, all: true, CancellationToken.None);
            exits.RecordExit(record, 128, "StartError", e.Message);
            throw;
        }
        // A status call racing this start may already have seen a process that exited at once:
        // the exit stands, and only the start time is filled in.
        bool running = false;
        long startedAt = time.Now();
        record = containers.Update(record.Id, current =>
        {
            running = current.State == ContainerState.ContainerCreated;
            return current with
            {
                StartedAtNanos = running ? startedAt : Math.Min(startedAt, current.FinishedAtNanos),
                State = running ? ContainerState.ContainerRunning : current.State,
                StartingAtNanos = 0,
            };
        });
        if (running) events.Publish(ContainerEventType.ContainerStartedEvent, record.Id, record.PodId);
        // A process that exits at once may already have left its exit file.
        exits.Refresh(record);
    }

    /// <summary>Stops with the stop signal, then SIGKILL after <paramref name="timeoutSeconds"/>; idempotent.</summary>
    /// <summary>Idempotent as the CRI demands: an unknown or already removed container is already stopped.</summary>
    public async Task StopAsync(string id, long timeoutSeconds, CancellationToken cancellationToken)
    {
        var record = containers.Resolve(id);
        if (record is null) return;
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        if (containers.Get(record.Id) is not { } current) return;
        await StopLockedAsync(current, timeoutSeconds, cancellationToken);
    }

    private async Task StopLockedAsync(ContainerRecord record, long timeoutSeconds, CancellationToken cancellationToken)
    {
        // The CRI's int64 seconds may exceed what a TimeSpan holds: such a grace period is as long as one can wait.
        var grace = TimeSpan.FromSeconds(Math.Min(timeoutSeconds, (long)TimeSpan.MaxValue.TotalSeconds));
        var settling = Stopwatch.StartNew();
        record = await exits.SettleInterruptedStartAsync(record, grace, cancellationToken);
        // The grace period is the stop's whole budget: what waiting for a restore took of it is spent.
        grace -= settling.Elapsed;
        record = await exits.ReconcileWithRuntimeAsync(record, cancellationToken);
        if (record.State == ContainerState.ContainerExited) return;
        var runtime = handlers.Of(record.RuntimeHandler);
        if (record.State == ContainerState.ContainerCreated)
        {
            // Never started: there is no user process to be gentle with.
            await runtime.KillAsync(record.Id, Signals.Kill, all: true, CancellationToken.None);
        }
        else if (grace > TimeSpan.Zero)
        {
            await runtime.KillAsync(record.Id, Signals.Parse(record.StopSignal), all: false, CancellationToken.None);
            if (await WaitForExitAsync(record, grace, cancellationToken)) return;
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
        // An elapsed time, not a time of day: a clock step does not cut the wait short or stretch it.
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < limit)
        {
            var current = containers.Get(record.Id) ?? record;
            // A created container that was killed never gets an exit file from conmon's create path.
            if (current.State == ContainerState.ContainerCreated && !current.IsInitAlive())
            {
                exits.RecordExit(current, 137, "Error", "killed before it was started");
                return true;
            }
            if (exits.Refresh(current).State == ContainerState.ContainerExited) return true;
            await Task.Delay(50, cancellationToken);
        }
        return false;
    }

    /// <summary>Removes a container in any state; unknown ids succeed, as the CRI requires.</summary>
    public async Task RemoveAsync(string id, CancellationToken cancellationToken)
    {
        var record = containers.Resolve(id);
        if (record is null) return;
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        if (containers.Get(record.Id) is not { } current) return;
        // A restore a daemon restart left under way would carry on past the removal: it is abandoned first.
        await exits.SettleInterruptedStartAsync(current, TimeSpan.Zero, cancellationToken);
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

    /// <summary>For StopPodSandbox: every container of the pod, killed at once.</summary>
    public async Task StopAllOfPodAsync(string podId, CancellationToken cancellationToken)
    {
        foreach (var record in lookup.OfPod(podId).ToList())
        {
            using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
            if (containers.Get(record.Id) is not { } current) continue;
            await StopLockedAsync(current, 0, cancellationToken);
        }
    }

    public async Task RemoveAllOfPodAsync(string podId, CancellationToken cancellationToken)
    {
        foreach (var record in lookup.OfPod(podId).ToList()) await RemoveAsync(record.Id, cancellationToken);
    }
}
