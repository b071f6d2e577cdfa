using System.Net;
using System.Net.Sockets;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>Container and pod stats and metrics, as the kubelet and crictl read them.</summary>
[Collection(RegistryCollection.Name)]
public class StatsTests(RegistryFixture registry)
{
    private const ulong MiB = 1 << 20;
    private const int WrittenFileMiB = 20;

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>Holds ~32 MiB in a shell variable (anonymous memory, no tmpfs), writes 20 MiB into its rootfs, then burns CPU in bursts.</summary>
    private static readonly string BurnerScript =
        "x=$(head -c 33554432 /dev/zero | tr '\\0' a); " +
        $"dd if=/dev/urandom of=/data.bin bs=1M count={WrittenFileMiB} 2>/dev/null && touch /written; " +
        "while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.1; done";

    [Fact]
    public async Task StatsShowMemoryCpuDiskProcessesAndNetworkAndMetricsNameThem()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        var podConfig = Cri.Pod("stats");
        string podId = await daemon.RunPodAsync(podConfig);
        string burner = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("burner", Busybox, "sh", "-c", BurnerScript));
        string idle = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("idle", Busybox, "sleep", "3600"));
        var otherConfig = Cri.Pod("stats-other");
        string otherPod = await daemon.RunPodAsync(otherConfig);
        string otherContainer = await daemon.StartContainerAsync(otherPod, otherConfig, Cri.Container("other", Busybox, "sleep", "3600"));

        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(burner, "test", "-e", "/written")).ExitCode == 0,
            TimeSpan.FromSeconds(60), "the burner to fill its memory and write its file");

        // Memory: the 32 MiB variable is anonymous memory, so it is in the working set and the rss.
        var first = await ContainerStatsAsync(daemon, burner);
        Assert.Equal(burner, first.Attributes.Id);
        Assert.Equal("burner", first.Attributes.Metadata.Name);
        Assert.Equal("burner", first.Attributes.Labels["container"]);
        Assert.InRange(first.Memory.WorkingSetBytes.Value, 24 * MiB, 1024 * MiB);
        Assert.InRange(first.Memory.RssBytes.Value, 24 * MiB, 1024 * MiB);
        Assert.True(first.Memory.UsageBytes.Value >= first.Memory.WorkingSetBytes.Value);
        Assert.True(first.Memory.PageFaults.Value > 0);
        Assert.True(first.Memory.Timestamp > 0);
        // Not limited: no available bytes.
        Assert.Null(first.Memory.AvailableBytes);

        // Disk: the written file is in the writable layer.
        Assert.True(first.WritableLayer.UsedBytes.Value >= WrittenFileMiB * MiB,
            $"writable layer {first.WritableLayer.UsedBytes.Value} bytes, wrote {WrittenFileMiB} MiB");
        Assert.True(first.WritableLayer.InodesUsed.Value >= 3);
        Assert.Equal(Path.Combine(daemon.Dirs.Root, "rootfs"), first.WritableLayer.FsId.Mountpoint);

        // CPU: cumulative and growing; the second reading has a rate against the first.
        Assert.True(first.Cpu.UsageCoreNanoSeconds.Value > 0);
        await Task.Delay(1000);
        var second = await ContainerStatsAsync(daemon, burner);
        Assert.True(second.Cpu.UsageCoreNanoSeconds.Value > first.Cpu.UsageCoreNanoSeconds.Value);
        Assert.True(second.Cpu.Timestamp > first.Cpu.Timestamp);
        Assert.InRange(second.Cpu.UsageNanoCores.Value, 1UL, 2_000_000_000UL * (ulong)Environment.ProcessorCount);

        // Lists filter by pod and label, as ListContainers does.
        Assert.Equal(3, (await ListContainerStatsAsync(daemon, new ContainerStatsFilter())).Count);
        var ofPod = await ListContainerStatsAsync(daemon, new ContainerStatsFilter { PodSandboxId = podId });
        Assert.Equal(new[] { burner, idle }.Order(), ofPod.Select(s => s.Attributes.Id).Order());
        var labelled = await ListContainerStatsAsync(daemon, new ContainerStatsFilter { LabelSelector = { ["container"] = "other" } });
        Assert.Equal(otherContainer, Assert.Single(labelled).Attributes.Id);
        Assert.Empty(await ListContainerStatsAsync(daemon, new ContainerStatsFilter { PodSandboxId = podId, LabelSelector = { ["container"] = "other" } }));
        var streamed = new List<ContainerStats>();
        using (var call = daemon.Runtime.StreamContainerStats(new StreamContainerStatsRequest()))
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync()) streamed.AddRange(response.ContainerStats);
        }
        Assert.Equal(new[] { burner, idle, otherContainer }.Order(), streamed.Select(s => s.Attributes.Id).Order());

        // Network: traffic from the host to the pod shows on its eth0.
        string podIp = (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status.Network.Ip;
        Assert.StartsWith(network.SubnetPrefix + ".", podIp);
        var before = (await PodSandboxStatsAsync(daemon, podId)).Linux.Network.DefaultInterface;
        using (var udp = new UdpClient())
        {
            for (int i = 0; i < 3; i++) await udp.SendAsync(new byte[512], new IPEndPoint(IPAddress.Parse(podIp), 9));
        }
        PodSandboxStats podStats = null!;
        await Cri.WaitUntilAsync(async () =>
        {
            podStats = await PodSandboxStatsAsync(daemon, podId);
            var eth0 = podStats.Linux.Network?.DefaultInterface;
            return eth0 is not null && eth0.RxBytes.Value >= before.RxBytes.Value + 3 * 512 && eth0.TxBytes.Value > before.TxBytes.Value;
        }, TimeSpan.FromSeconds(15), "rx and tx bytes on the pod's eth0");
        Assert.Equal("eth0", podStats.Linux.Network.DefaultInterface.Name);
        Assert.Equal(podId, podStats.Attributes.Id);
        Assert.Equal("stats", podStats.Attributes.Labels["test"]);
        Assert.Equal(new[] { burner, idle }.Order(), podStats.Linux.Containers.Select(c => c.Attributes.Id).Order());
        // catatonit, the burner's shell, sleep: at least those.
        Assert.True(podStats.Linux.Process.ProcessCount.Value >= 3, $"{podStats.Linux.Process.ProcessCount.Value} processes");
        Assert.True(podStats.Linux.Memory.WorkingSetBytes.Value >= first.Memory.WorkingSetBytes.Value / 2);
        Assert.True(podStats.Linux.Cpu.UsageCoreNanoSeconds.Value >= second.Cpu.UsageCoreNanoSeconds.Value);
        var listedPods = (await daemon.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest
        {
            Filter = new PodSandboxStatsFilter { LabelSelector = { ["test"] = "stats-other" } },
        })).Stats;
        Assert.Equal(otherPod, Assert.Single(listedPods).Attributes.Id);
        var streamedPods = new List<PodSandboxStats>();
        using (var call = daemon.Runtime.StreamPodSandboxStats(new StreamPodSandboxStatsRequest()))
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync()) streamedPods.AddRange(response.PodSandboxStats);
        }
        Assert.Equal(new[] { podId, otherPod }.Order(), streamedPods.Select(p => p.Attributes.Id).Order());

        // Metrics: every value is described, with one label value per key.
        var descriptors = (await daemon.Runtime.ListMetricDescriptorsAsync(new ListMetricDescriptorsRequest())).Descriptors.ToDictionary(d => d.Name);
        var podMetrics = (await daemon.Runtime.ListPodSandboxMetricsAsync(new ListPodSandboxMetricsRequest())).PodMetrics
            .Single(p => p.PodSandboxId == podId);
        var burnerMetrics = podMetrics.ContainerMetrics.Single(c => c.ContainerId == burner).Metrics;
        var workingSet = burnerMetrics.Single(m => m.Name == "container_memory_working_set_bytes");
        Assert.Equal(MetricType.Gauge, workingSet.MetricType);
        Assert.InRange(workingSet.Value.Value, 24 * MiB, 1024 * MiB);
        Assert.Equal(new[] { burner, "burner", Busybox }, workingSet.LabelValues);
        Assert.Equal(MetricType.Counter, burnerMetrics.Single(m => m.Name == "container_cpu_usage_seconds_total").MetricType);
        var received = podMetrics.Metrics.Single(m => m.Name == "container_network_receive_bytes_total" && m.LabelValues.Last() == "eth0");
        Assert.True(received.Value.Value >= before.RxBytes.Value + 3 * 512);
        Assert.All(podMetrics.Metrics.Concat(podMetrics.ContainerMetrics.SelectMany(c => c.Metrics)),
            m => Assert.Equal(descriptors[m.Name].LabelKeys.Count, m.LabelValues.Count));
        var streamedMetrics = new List<PodSandboxMetrics>();
        using (var call = daemon.Runtime.StreamPodSandboxMetrics(new StreamPodSandboxMetricsRequest()))
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync()) streamedMetrics.AddRange(response.PodSandboxMetrics);
        }
        Assert.Equal(new[] { podId, otherPod }.Order(), streamedMetrics.Select(p => p.PodSandboxId).Order());

        // A stopped container still has stats: no cgroup figures, but its writable layer.
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = idle, Timeout = 0 });
        var stopped = await ContainerStatsAsync(daemon, idle);
        Assert.Equal(idle, stopped.Attributes.Id);
        Assert.Null(stopped.Cpu);
        Assert.Null(stopped.Memory);
        Assert.True(stopped.WritableLayer.InodesUsed.Value >= 1);

        // Unknown ids: NOT_FOUND.
        var missingContainer = await Assert.ThrowsAsync<RpcException>(() => ContainerStatsAsync(daemon, "0123456789abcdef"));
        Assert.Equal(StatusCode.NotFound, missingContainer.StatusCode);
        var missingPod = await Assert.ThrowsAsync<RpcException>(() => PodSandboxStatsAsync(daemon, "0123456789abcdef"));
        Assert.Equal(StatusCode.NotFound, missingPod.StatusCode);

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = otherPod });
        Assert.Empty((await daemon.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest())).Stats);
    }

    [Fact]
    public async Task AHostNetworkPodHasNoNetworkStatsAndAPodCgroupParentIsReadWhole()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        string parent = $"/crishim-it-stats-{Guid.NewGuid():N}";
        var podConfig = Cri.Pod("host-net");
        podConfig.Linux.SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } };
        podConfig.Linux.CgroupParent = parent;
        string podId = await daemon.RunPodAsync(podConfig);
        try
        {
            string sleeper = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));

            var stats = await PodSandboxStatsAsync(daemon, podId);
            Assert.Null(stats.Linux.Network);
            // The parent holds catatonit and sleep.
            Assert.True(stats.Linux.Process.ProcessCount.Value >= 2, $"{stats.Linux.Process.ProcessCount.Value} processes");
            Assert.True(stats.Linux.Memory.UsageBytes.Value > 0);
            Assert.True(stats.Linux.Cpu.UsageCoreNanoSeconds.Value > 0);
            Assert.Equal(sleeper, Assert.Single(stats.Linux.Containers).Attributes.Id);
            var podMetrics = (await daemon.Runtime.ListPodSandboxMetricsAsync(new ListPodSandboxMetricsRequest())).PodMetrics.Single();
            Assert.Empty(podMetrics.Metrics);
            Assert.Contains(Assert.Single(podMetrics.ContainerMetrics).Metrics, m => m.Name == "container_processes" && m.Value.Value == 1);
        }
        finally
        {
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            // runc leaves the parent it created, one per v1 hierarchy (or the one v2 directory).
            foreach (string hierarchy in Directory.GetDirectories("/sys/fs/cgroup").Append("/sys/fs/cgroup"))
            {
                string dir = hierarchy + parent;
                if (Directory.Exists(dir)) Directory.Delete(dir);
            }
        }
    }

    [Fact]
    public async Task APodWhoseInfraDiedStillShowsItsNetworkCountersFromThePinnedNamespace()
    {
        await using var daemon = await Daemon.StartAsync();
        var podConfig = Cri.Pod("stats-infra-gone");
        string podId = await daemon.RunPodAsync(podConfig);
        // While the infra runs, its /proc entry shows the pod's namespace.
        Assert.Equal("eth0", (await PodSandboxStatsAsync(daemon, podId)).Linux.Network.DefaultInterface.Name);

        var verbose = await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId, Verbose = true });
        int infraPid = System.Text.Json.JsonDocument.Parse(verbose.Info["info"]).RootElement.GetProperty("pid").GetInt32();
        System.Diagnostics.Process.Start("kill", ["-KILL", infraPid.ToString()])!.WaitForExit();
        await Cri.WaitUntilAsync(async () => (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId }))
            .Status.State == PodSandboxState.SandboxNotready, TimeSpan.FromSeconds(15), "the pod to be not ready");

        // Its namespace stays pinned until StopPodSandbox: the counters come from there.
        var stats = (await daemon.Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest())).Stats.Single(s => s.Attributes.Id == podId);
        Assert.Equal("eth0", stats.Linux.Network.DefaultInterface.Name);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    private static async Task<ContainerStats> ContainerStatsAsync(Daemon daemon, string id) =>
        (await daemon.Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = id })).Stats;

    private static async Task<PodSandboxStats> PodSandboxStatsAsync(Daemon daemon, string id) =>
        (await daemon.Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = id })).Stats;

    private static async Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(Daemon daemon, ContainerStatsFilter filter) =>
        (await daemon.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest { Filter = filter })).Stats;
}
