using CriShim.NativeInterop;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Images;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Stats;

/// <summary>
/// Container and pod sandbox stats and the pods' cadvisor-style metrics, read live from cgroups, the
/// pod's network namespace and the writable layers. A stopped container or pod has no cgroup to read:
/// its stats carry what is still known (attributes, writable layer) and never fail for that.
/// </summary>
public sealed class StatsService(
    RuntimeConfigSection runtime,
    ContainerLookup containers,
    PodSandboxService sandboxes,
    OverlayRootfsService rootfs,
    CgroupReader cgroups,
    TimeProvider time,
    ILogger<StatsService> logger)
{
    private readonly CpuRateTracker _containerCpu = new();
    private readonly CpuRateTracker _podCpu = new();
    private readonly WritableLayerUsage _layers = new(time);

    private sealed record ContainerSample(ContainerRecord Record, CgroupSample? Cgroup);

    private sealed record PodSample(PodSandboxRecord Record, CgroupSample? Cgroup, IReadOnlyList<InterfaceCounters> Interfaces,
        IReadOnlyList<ContainerSample> Containers);

    public ContainerStats Container(string id) => ToCri(Sample(containers.Get(id)), time.Now());

    public IReadOnlyList<ContainerStats> ListContainers(ContainerStatsFilter? filter)
    {
        bool everyContainer = filter is null || (filter.Id.Length == 0 && filter.PodSandboxId.Length == 0 && filter.LabelSelector.Count == 0);
        var records = containers.List(filter is null ? null : new ContainerFilter
        {
            Id = filter.Id,
            PodSandboxId = filter.PodSandboxId,
            LabelSelector = { filter.LabelSelector },
        }).ToList();
        if (everyContainer) ForgetAllBut(records.Select(r => r.Id).ToHashSet(), pods: null);
        long now = time.Now();
        return records.Select(record => ToCri(Sample(record), now)).ToList();
    }

    public async Task<PodSandboxStats> PodSandboxAsync(string id) =>
        ToCri(await SampleAsync(sandboxes.Get(id)), time.Now());

    public async Task<IReadOnlyList<PodSandboxStats>> ListPodSandboxesAsync(PodSandboxStatsFilter? filter)
    {
        var samples = await SamplePodsAsync(filter);
        long now = time.Now();
        return samples.Select(pod => ToCri(pod, now)).ToList();
    }

    public IEnumerable<MetricDescriptor> MetricDescriptorList() => MetricDescriptors.All.Select(d => d.Clone());

    public async Task<IReadOnlyList<PodSandboxMetrics>> ListPodSandboxMetricsAsync()
    {
        var samples = await SamplePodsAsync(filter: null);
        long now = time.Now();
        return samples.Select(pod =>
        {
            var metrics = new PodSandboxMetrics { PodSandboxId = pod.Record.Id };
            metrics.Metrics.Add(MetricDescriptors.ForNetwork(MetricDescriptors.PodLabels(pod.Record.Id), pod.Interfaces, now));
            foreach (var container in pod.Containers.Where(c => c.Cgroup is not null))
            {
                var record = container.Record;
                var labels = MetricDescriptors.ContainerLabels(record.Id, record.ConfigMessage.Metadata.Name, record.ImageName);
                var containerMetrics = new ContainerMetrics { ContainerId = record.Id };
                containerMetrics.Metrics.Add(MetricDescriptors.ForContainer(labels, container.Cgroup!, now));
                metrics.ContainerMetrics.Add(containerMetrics);
            }
            return metrics;
        }).ToList();
    }

    private async Task<List<PodSample>> SamplePodsAsync(PodSandboxStatsFilter? filter)
    {
        var records = sandboxes.List(filter is null ? null : new PodSandboxFilter { Id = filter.Id, LabelSelector = { filter.LabelSelector } }).ToList();
        var containersByPod = containers.CurrentOfPods(records.Select(r => r.Id));
        var samples = new List<PodSample>(records.Count);
        foreach (var record in records) samples.Add(await SampleAsync(record, containersByPod[record.Id]));
        if (filter is null || (filter.Id.Length == 0 && filter.LabelSelector.Count == 0))
        {
            ForgetAllBut(samples.SelectMany(p => p.Containers).Select(c => c.Record.Id).ToHashSet(), records.Select(r => r.Id).ToHashSet());
        }
        return samples;
    }

    /// <summary>Readings of removed containers and pods are dropped when a call has seen every one that exists.</summary>
    private void ForgetAllBut(IReadOnlySet<string> containerIds, IReadOnlySet<string>? pods)
    {
        _containerCpu.Keep(containerIds);
        _layers.Keep(containerIds);
        if (pods is not null) _podCpu.Keep(pods);
    }

    private ContainerSample Sample(ContainerRecord record) =>
        // Only a running container's pid is its own: an exited one's may have been reused.
        new(record, record.State == ContainerState.ContainerRunning ? cgroups.ReadProcess(record.Pid) : null);

    private Task<PodSample> SampleAsync(PodSandboxRecord pod) => SampleAsync(pod, containers.CurrentOfPod(pod.Id));

    private async Task<PodSample> SampleAsync(PodSandboxRecord pod, IEnumerable<ContainerRecord> podContainers)
    {
        var containerSamples = podContainers.Select(Sample).ToList();
        return new PodSample(pod, PodCgroup(pod, containerSamples), await InterfacesAsync(pod), containerSamples);
    }

    /// <summary>
    /// The pod-level cgroup the kubelet made (cgroup_parent) holds the infra process and every container;
    /// a pod without one has only their cgroups, counted together.
    /// </summary>
    private CgroupSample? PodCgroup(PodSandboxRecord pod, IReadOnlyList<ContainerSample> containerSamples)
    {
        if (pod.CgroupParent.Length > 0) return cgroups.ReadPath(CgroupReader.PodCgroupPath(runtime.CgroupDriver, pod.CgroupParent));
        var parts = containerSamples.Select(c => c.Cgroup)
            .Append(PodSandboxStatusMapper.StateOf(pod) == PodSandboxState.SandboxReady ? cgroups.ReadProcess(pod.InfraPid) : null)
            .OfType<CgroupSample>().ToList();
        return parts.Count == 0 ? null : CgroupSample.Sum(parts);
    }

    /// <summary>
    /// Host-network pods have no namespace of their own, so no network stats (the node's are not theirs). The infra
    /// process lives in the pod's namespace, so its /proc entry shows the counters without entering the namespace;
    /// only a pod whose infra is gone has a thread enter the pinned namespace.
    /// </summary>
    private async Task<IReadOnlyList<InterfaceCounters>> InterfacesAsync(PodSandboxRecord pod)
    {
        if (pod.NetNsPath.Length == 0 || !NetworkNamespaces.IsPinned(pod.NetNsPath)) return [];
        try
        {
            var interfaces = (pod.Infra is { } infra ? NetworkCounters.ReadOf(infra) : null) ?? await NetworkCounters.ReadAsync(pod.NetNsPath);
            return interfaces.Where(i => i.Name != "lo").ToList();
        }
        catch (Exception e) when (e is IOException or NativeCallException)
        {
            // The pod was stopped between the check and the read.
            logger.LogDebug(e, "no network counters for pod sandbox {Id}", pod.Id);
            return [];
        }
    }

    private ContainerStats ToCri(ContainerSample sample, long now)
    {
        var record = sample.Record;
        var containerConfig = record.ConfigMessage;
        var attributes = new ContainerAttributes { Id = record.Id, Metadata = containerConfig.Metadata };
        attributes.Labels.Add(containerConfig.Labels);
        attributes.Annotations.Add(containerConfig.Annotations);
        var layer = _layers.Of(record.Id, rootfs.UpperDir(record.Id));
        var stats = new ContainerStats
        {
            Attributes = attributes,
            WritableLayer = new FilesystemUsage
            {
                Timestamp = now,
                // The writable layers' filesystem, as ImageFsInfo reports it in container_filesystems.
                FsId = new FilesystemIdentifier { Mountpoint = rootfs.Root },
                UsedBytes = new UInt64Value { Value = layer.UsedBytes },
                InodesUsed = new UInt64Value { Value = layer.InodesUsed },
            },
        };
        if (sample.Cgroup is { } cgroup)
        {
            stats.Cpu = Cpu(_containerCpu, record.Id, cgroup, now);
            stats.Memory = Memory(cgroup, now);
            stats.Swap = Swap(cgroup, now);
        }
        return stats;
    }

    private PodSandboxStats ToCri(PodSample sample, long now)
    {
        var pod = sample.Record;
        var podConfig = pod.ConfigMessage;
        var attributes = new PodSandboxAttributes { Id = pod.Id, Metadata = podConfig.Metadata };
        attributes.Labels.Add(podConfig.Labels);
        attributes.Annotations.Add(podConfig.Annotations);
        var linux = new LinuxPodSandboxStats();
        if (sample.Cgroup is { } cgroup)
        {
            linux.Cpu = Cpu(_podCpu, pod.Id, cgroup, now);
            linux.Memory = Memory(cgroup, now);
            if (cgroup.ProcessCount is { } processes)
            {
                linux.Process = new ProcessUsage { Timestamp = now, ProcessCount = new UInt64Value { Value = processes } };
            }
        }
        linux.Network = Network(sample.Interfaces, now);
        linux.Containers.Add(sample.Containers.Select(c => ToCri(c, now)));
        return new PodSandboxStats { Attributes = attributes, Linux = linux };
    }

    private static CpuUsage? Cpu(CpuRateTracker rates, string id, CgroupSample cgroup, long now) =>
        cgroup.CpuUsageNanos is { } usage
            ? new CpuUsage
            {
                Timestamp = now,
                UsageCoreNanoSeconds = new UInt64Value { Value = usage },
                UsageNanoCores = new UInt64Value { Value = rates.NanoCores(id, new CpuReading(now, usage)) },
            }
            : null;

    private static MemoryUsage? Memory(CgroupSample cgroup, long now)
    {
        if (cgroup.MemoryUsageBytes is not { } usage) return null;
        var memory = new MemoryUsage
        {
            Timestamp = now,
            UsageBytes = new UInt64Value { Value = usage },
            WorkingSetBytes = new UInt64Value { Value = cgroup.WorkingSetBytes ?? 0 },
            RssBytes = new UInt64Value { Value = cgroup.RssBytes ?? 0 },
            PageFaults = new UInt64Value { Value = cgroup.PageFaults ?? 0 },
            MajorPageFaults = new UInt64Value { Value = cgroup.MajorPageFaults ?? 0 },
        };
        if (cgroup.AvailableBytes is { } available) memory.AvailableBytes = new UInt64Value { Value = available };
        return memory;
    }

    private static SwapUsage? Swap(CgroupSample cgroup, long now)
    {
        if (cgroup.SwapUsageBytes is not { } usage) return null;
        var swap = new SwapUsage { Timestamp = now, SwapUsageBytes = new UInt64Value { Value = usage } };
        if (cgroup.SwapAvailableBytes is { } available) swap.SwapAvailableBytes = new UInt64Value { Value = available };
        return swap;
    }

    private static NetworkUsage? Network(IReadOnlyList<InterfaceCounters> interfaces, long now)
    {
        // CNI names the pod's interface eth0; another plugin's naming still gets a default.
        var primary = interfaces.FirstOrDefault(i => i.Name == NetworkCounters.DefaultInterface) ?? interfaces.FirstOrDefault();
        if (primary is null) return null;
        var network = new NetworkUsage { Timestamp = now, DefaultInterface = ToCri(primary) };
        network.Interfaces.Add(interfaces.Where(i => i != primary).Select(ToCri));
        return network;
    }

    private static NetworkInterfaceUsage ToCri(InterfaceCounters counters) => new()
    {
        Name = counters.Name,
        RxBytes = new UInt64Value { Value = counters.RxBytes },
        RxErrors = new UInt64Value { Value = counters.RxErrors },
        TxBytes = new UInt64Value { Value = counters.TxBytes },
        TxErrors = new UInt64Value { Value = counters.TxErrors },
    };
}
