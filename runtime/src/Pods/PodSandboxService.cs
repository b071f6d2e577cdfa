using System.Text.Json;
using CriShim.NativeInterop;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Events;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Network;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>
/// Pod sandboxes: a pinned network namespace, a catatonit infra process (through conmon, so it
/// outlives the daemon) that holds the IPC/UTS/PID namespaces, a /dev/shm tmpfs and the /etc files.
/// </summary>
public sealed class PodSandboxService(
    RuntimeConfigSection runtimeConfig,
    StatePaths paths,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    IIdSource ids,
    TimeProvider time,
    RecordStore<PodSandboxRecord> pods,
    PodLocks locks,
    ContainerService containers,
    IPodNetwork network,
    ContainerEventPublisher events,
    ILogger<PodSandboxService> logger)
{
    private readonly SemaphoreSlim _names = new(1, 1);

    private string InfraBundle(string podId) => Path.Combine(pods.DirectoryOf(podId), "infra");

    public async Task<string> RunAsync(PodSandboxConfig podConfig, string runtimeHandler, CancellationToken cancellationToken)
    {
        var metadata = podConfig.Metadata;
        if (metadata is null || metadata.Name.Length == 0 || metadata.Namespace.Length == 0 || metadata.Uid.Length == 0)
        {
            throw new InvalidRequestException("pod sandbox metadata needs name, namespace and uid");
        }
        if (!handlers.TryGet(runtimeHandler, out var runtime))
        {
            throw new InvalidRequestException($"runtime handler \"{runtimeHandler}\" is not configured (have: {string.Join(", ", handlers.All.Select(h => h.Handler))})");
        }
        string cgroupParent = podConfig.Linux?.CgroupParent ?? "";
        CgroupPaths.Validate(runtimeConfig.CgroupDriver, cgroupParent);
        var namespaceOptions = podConfig.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        if (namespaceOptions.Pid == NamespaceMode.Target) throw new InvalidRequestException("a pod cannot use pid namespace mode TARGET");
        if (PodUserNamespace.Of(namespaceOptions) is not null)
        {
            if (!(await runtime.FeaturesAsync()).UserNamespaces)
            {
                throw new InvalidRequestException($"runtime handler \"{runtime.Handler}\" does not support user namespaces");
            }
            PodUserNamespace.OpenForTraversal(paths);
        }

        string id = ids.NewId();
        PodSandboxRecord record;
        await _names.WaitAsync(cancellationToken);
        try
        {
            var holder = pods.All.FirstOrDefault(p =>
            {
                var m = p.ConfigMessage.Metadata;
                return m.Name == metadata.Name && m.Namespace == metadata.Namespace && m.Uid == metadata.Uid && m.Attempt == metadata.Attempt;
            });
            if (holder is not null)
            {
                throw new AlreadyExistsException(
                    $"pod sandbox name \"{metadata.Name}_{metadata.Namespace}_{metadata.Uid}_{metadata.Attempt}\" is already used by sandbox {holder.Id}");
            }
            record = new PodSandboxRecord
            {
                Id = id,
                Config = podConfig.ToByteArray(),
                RuntimeHandler = runtime.Handler,
                CreatedAtNanos = time.Now(),
                CgroupParent = cgroupParent,
            };
            pods.Add(record);
        }
        finally
        {
            _names.Release();
        }

        using var _ = await locks.AcquireAsync(id, cancellationToken);
        try
        {
            // Set-up is not cut short by a client that gives up: a half-built pod is worse than a late one.
            await SetUpAsync(record, podConfig, namespaceOptions, runtime, CancellationToken.None);
            // As containerd: the pod's own events carry the pod id as the container id.
            events.Publish(ContainerEventType.ContainerCreatedEvent, id, id);
            events.Publish(ContainerEventType.ContainerStartedEvent, id, id);
            return id;
        }
        catch
        {
            // What set-up recorded before it failed (namespace, /dev/shm) is what is released.
            await TearDownAsync(pods.Get(record.Id) ?? record, CancellationToken.None);
            pods.Delete(record.Id);
            if (Directory.Exists(paths.PodRun(record.Id))) Directory.Delete(paths.PodRun(record.Id), recursive: true);
            throw;
        }
    }

    private async Task SetUpAsync(PodSandboxRecord record, PodSandboxConfig podConfig, NamespaceOption namespaces, IOciRuntime runtime, CancellationToken cancellationToken)
    {
        bool hostNetwork = namespaces.Network == NamespaceMode.Node;
        var userNamespace = PodUserNamespace.Of(namespaces);
        string podDir = pods.DirectoryOf(record.Id);
        string hostname = podConfig.Hostname.Length > 0 ? podConfig.Hostname : hostNetwork ? Environment.MachineName : podConfig.Metadata.Name;
        PodFiles.Write(podDir, hostname, podConfig.DnsConfig, hostNetwork);
        userNamespace?.GiveToContainerRoot(PodFiles.Hostname(podDir), PodFiles.Hosts(podDir), PodFiles.ResolvConf(podDir));
        StateDirectory.Create(paths.PodRun(record.Id));
        userNamespace?.OpenStateTo(paths, podDir, paths.PodRun(record.Id));
        if (!hostNetwork && userNamespace is null)
        {
            record = await PinAndAttachNetworkAsync(record, NetworkNamespaces.CreatePinned, cancellationToken);
        }
        if (namespaces.Ipc != NamespaceMode.Node)
        {
            string shm = Path.Combine(paths.PodRun(record.Id), "shm");
            StateDirectory.Create(shm);
            using (PhaseLog.Time("mount shm", record.Id))
            {
                Mounts.Mount("shm", shm, "tmpfs", MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec,
                    "mode=1777,size=65536k" + (userNamespace?.ShmOwnerOptions ?? ""));
            }
            record = pods.Update(record.Id, current => current with { ShmPath = shm });
        }

        InfraSpec.EnsureRootfs(paths.InfraRootfs);
        string bundle = InfraBundle(record.Id);
        StateDirectory.Create(bundle);
        var spec = InfraSpec.Build(record, paths.InfraRootfs, CgroupPaths.For(runtimeConfig.CgroupDriver, record.CgroupParent, record.Id), OomScore.Clamp(-998));
        AtomicFile.WriteText(Path.Combine(bundle, "config.json"), spec.ToJsonString());
        int infraPid = await monitor.CreateAsync(new ConmonLaunch(record.Id, $"infra_{podConfig.Metadata.Name}", bundle, runtime,
            Path.Combine(bundle, "infra.log"), runtimeConfig.CgroupDriver == "systemd"), cancellationToken);
        var infra = ProcessIdentity.Of(infraPid)
            ?? throw new ContainerCreateException($"the infra process of pod sandbox {record.Id} ended before it was started");
        record = pods.Update(record.Id, current => current with { InfraPid = infraPid, Infra = infra });
        if (userNamespace is not null)
        {
            // The infra process made the network namespace inside the pod's user namespace (see InfraSpec);
            // pinned like any other, it is wired before the infra process runs and outlives it.
            string infraNetwork = $"/proc/{record.InfraPid}/ns/net";
            record = await PinAndAttachNetworkAsync(record, netns => NetworkNamespaces.Pin(infraNetwork, netns), cancellationToken);
        }
        await runtime.StartAsync(record.Id, cancellationToken);
        record = pods.Update(record.Id, current => current with { Ready = true });
        logger.LogInformation("pod sandbox {Id} ({Namespace}/{Name}) ready, infra pid {Pid}", record.Id,
            podConfig.Metadata.Namespace, podConfig.Metadata.Name, record.InfraPid);
    }

    private async Task<PodSandboxRecord> PinAndAttachNetworkAsync(PodSandboxRecord record, Action<string> pin, CancellationToken cancellationToken)
    {
        string netns = paths.NetNs(record.Id);
        StateDirectory.Create(Path.GetDirectoryName(netns)!);
        using (PhaseLog.Time("netns pin", record.Id)) pin(netns);
        // Recorded before the plugins run, so a failed or interrupted attach is detached and removed.
        record = pods.Update(record.Id, current => current with { NetNsPath = netns });
        var ips = await network.AttachAsync(record, cancellationToken);
        return pods.Update(record.Id, current => current with { Ips = [.. ips] });
    }

    /// <summary>Releases the infra process, the namespaces and /dev/shm; safe to repeat.</summary>
    private Task TearDownAsync(PodSandboxRecord record, CancellationToken cancellationToken) =>
        // The network's DEL needs the pinned namespace, not the infra process: both are released at once
        // (StopPodSandbox waited for the runtime's delete, then for every CNI plugin's DEL).
        Task.WhenAll(ReleaseInfraAsync(record, cancellationToken), ReleaseNetworkAsync(record, cancellationToken));

    private async Task ReleaseInfraAsync(PodSandboxRecord record, CancellationToken cancellationToken)
    {
        if (handlers.TryGet(record.RuntimeHandler, out var runtime))
        {
            await runtime.DeleteAsync(record.Id, cancellationToken);
        }
        monitor.Forget(record.Id);
        if (record.ShmPath.Length > 0)
        {
            using (PhaseLog.Time("unmount shm", record.Id)) Mounts.TryUnmount(record.ShmPath, UnmountFlags.Detach);
        }
    }

    private async Task ReleaseNetworkAsync(PodSandboxRecord record, CancellationToken cancellationToken)
    {
        if (record.NetNsPath.Length == 0) return;
        await network.DetachAsync(record, cancellationToken);
        using (PhaseLog.Time("netns remove", record.Id)) NetworkNamespaces.Remove(record.NetNsPath);
    }

    /// <summary>Stops every container and releases the pod's resources; idempotent, unknown ids succeed.</summary>
    public async Task StopAsync(string id, CancellationToken cancellationToken)
    {
        var record = pods.Resolve(id);
        if (record is null) return;
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        if (pods.Get(record.Id) is null) return;
        await containers.StopAllOfPodAsync(record.Id, cancellationToken);
        record = pods.Get(record.Id)!;
        await TearDownAsync(record, CancellationToken.None);
        if (record.Ready || record.InfraPid != 0)
        {
            bool wasReady = record.Ready;
            pods.Update(record.Id, current => current with { Ready = false, InfraPid = 0, Infra = null });
            logger.LogInformation("pod sandbox {Id} stopped", record.Id);
            // Not ready already when its infra exited on its own: that STOPPED event was sent then.
            if (wasReady) events.Publish(ContainerEventType.ContainerStoppedEvent, record.Id, record.Id);
        }
    }

    /// <summary>For the exit watcher: an infra process that exited on its own leaves its pod not ready.</summary>
    public async Task NoticeInfraExitAsync(string id, CancellationToken cancellationToken)
    {
        if (pods.Get(id) is null) return;
        using var _ = await locks.AcquireAsync(id, cancellationToken);
        if (pods.Get(id) is not { Ready: true } record) return;
        pods.Update(record.Id, current => current with { Ready = false });
        logger.LogWarning("pod sandbox {Id}: its infra process exited", record.Id);
        events.Publish(ContainerEventType.ContainerStoppedEvent, record.Id, record.Id);
    }

    /// <summary>
    /// KEP-1287 in-place pod resize: records the pod-level overhead and resources. The kubelet has
    /// already resized the pod's cgroup (cgroup_parent), which it owns; crishim owns only the per-container
    /// cgroups beneath it, so, as in containerd and CRI-O (which only tell NRI plugins), nothing more applies.
    /// </summary>
    public async Task UpdateResourcesAsync(string id, LinuxContainerResources? overhead, LinuxContainerResources? resources, CancellationToken cancellationToken)
    {
        var record = Get(id);
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        pods.Update(record.Id, current => current with { Overhead = overhead?.ToByteArray() ?? [], Resources = resources?.ToByteArray() ?? [] });
    }

    /// <summary>Removes the pod and all its containers; idempotent, unknown ids succeed.</summary>
    public async Task RemoveAsync(string id, CancellationToken cancellationToken)
    {
        var record = pods.Resolve(id);
        if (record is null) return;
        await StopAsync(record.Id, cancellationToken);
        using var _ = await locks.AcquireAsync(record.Id, cancellationToken);
        if (pods.Get(record.Id) is null) return;
        await containers.RemoveAllOfPodAsync(record.Id, cancellationToken);
        string run = paths.PodRun(record.Id);
        if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
        var lastStatus = PodSandboxStatusMapper.Status(pods.Get(record.Id)!);
        pods.Delete(record.Id);
        logger.LogInformation("pod sandbox {Id} removed", record.Id);
        events.Publish(ContainerEventType.ContainerDeletedEvent, record.Id, record.Id, lastStatus);
    }

    public PodSandboxRecord Get(string id) =>
        pods.Resolve(id) ?? throw new NotFoundException($"pod sandbox \"{id}\" not found");

    public Dictionary<string, string> VerboseInfo(PodSandboxRecord record)
    {
        var info = new VerbosePodInfo(record.Id, record.InfraPid, record.NetNsPath, record.RuntimeHandler, record.CgroupParent,
            pods.DirectoryOf(record.Id), JsonDocument.Parse(JsonFormatter.Default.Format(record.ConfigMessage)).RootElement);
        return new Dictionary<string, string> { ["info"] = JsonSerializer.Serialize(info, PodInfoJson.Default.VerbosePodInfo) };
    }

    public IEnumerable<PodSandboxRecord> List(PodSandboxFilter? filter)
    {
        foreach (var record in pods.All)
        {
            if (filter is not null)
            {
                if (filter.Id.Length > 0 && !record.Id.StartsWith(filter.Id, StringComparison.Ordinal)) continue;
                if (filter.State is not null && PodSandboxStatusMapper.StateOf(record) != filter.State.State) continue;
                if (!LabelSelector.Matches(record.ConfigMessage.Labels, filter.LabelSelector)) continue;
            }
            yield return record;
        }
    }
}

public sealed record VerbosePodInfo(string Id, int Pid, string NetNs, string RuntimeHandler, string CgroupParent, string StateDir, JsonElement Config);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(VerbosePodInfo))]
internal sealed partial class PodInfoJson : System.Text.Json.Serialization.JsonSerializerContext;
