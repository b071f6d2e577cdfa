using CriShim.Runtime.Exec;
using CriShim.Runtime.Stats;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Stats;

public sealed class CpuRateTests
{
    [Fact]
    public void UsageNanoCoresIsTheRateBetweenTwoReadings()
    {
        var tracker = new CpuRateTracker();
        // Half a core: 0.5 s of CPU over 1 s.
        Assert.Equal(0UL, tracker.NanoCores("c", new CpuReading(1_000_000_000, 2_000_000_000)));
        Assert.Equal(500_000_000UL, tracker.NanoCores("c", new CpuReading(2_000_000_000, 2_500_000_000)));
        // Two cores over the next half second.
        Assert.Equal(2_000_000_000UL, tracker.NanoCores("c", new CpuReading(2_500_000_000, 3_500_000_000)));
        // Another container starts from nothing.
        Assert.Equal(0UL, tracker.NanoCores("other", new CpuReading(2_500_000_000, 1)));
    }

    [Fact]
    public void AClockThatDidNotAdvanceOrAUsageThatFellGivesZero()
    {
        Assert.Equal(0UL, CpuRateTracker.Rate(new CpuReading(5, 10), new CpuReading(5, 20)));
        Assert.Equal(0UL, CpuRateTracker.Rate(new CpuReading(5, 10), new CpuReading(4, 20)));
        Assert.Equal(0UL, CpuRateTracker.Rate(new CpuReading(5, 10), new CpuReading(6, 9)));
    }

    [Fact]
    public void ForgottenIdsStartOver()
    {
        var tracker = new CpuRateTracker();
        tracker.NanoCores("gone", new CpuReading(1, 1));
        tracker.NanoCores("kept", new CpuReading(1, 1));
        tracker.Keep(new HashSet<string> { "kept" });
        Assert.Equal(0UL, tracker.NanoCores("gone", new CpuReading(1_000_000_001, 2)));
        Assert.Equal(1UL, tracker.NanoCores("kept", new CpuReading(1_000_000_001, 2)));
    }
}

public sealed class NetworkCountersTests
{
    [Fact]
    public void ProcNetDevGivesEachInterfacesCounters()
    {
        const string text = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
              eth0:   12345      67    1    2    0     0          0         3     6789      45    4    5    0     0       0          0
            """;
        var interfaces = NetworkCounters.Parse(text);
        Assert.Equal(["lo", "eth0"], interfaces.Select(i => i.Name));
        var eth0 = interfaces[1];
        Assert.Equal(new InterfaceCounters("eth0", 12345, 67, 1, 2, 6789, 45, 4, 5), eth0);
    }

    [Fact]
    public void AProcesssCountersAreReadThroughItsProcEntryOnlyWhileThatVeryProcessRuns()
    {
        var self = ProcessIdentity.Of(Environment.ProcessId)!;
        Assert.Contains(NetworkCounters.ReadOf(self)!, i => i.Name == "lo");

        // The same pid with another start time: a process that ended and whose pid was reused.
        Assert.Null(NetworkCounters.ReadOf(self with { StartTime = self.StartTime + 1 }));
        Assert.Null(NetworkCounters.ReadOf(new ProcessIdentity(int.MaxValue, 1, ProcessIdentity.CurrentBootId)));
    }
}

public sealed class MetricDescriptorsTests
{
    [Fact]
    public void TheKubeletsCadvisorMetricsAreDescribed()
    {
        var names = MetricDescriptors.All.Select(d => d.Name).ToList();
        foreach (string name in new[]
        {
            "container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_memory_working_set_bytes",
            "container_memory_rss", "container_spec_memory_limit_bytes", "container_network_receive_bytes_total",
            "container_network_transmit_bytes_total", "container_processes",
        })
        {
            Assert.Contains(name, names);
        }
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void EveryMetricHasOneLabelValuePerDescriptorKey()
    {
        var descriptors = MetricDescriptors.All.ToDictionary(d => d.Name);
        var sample = new CgroupSample { CpuUsageNanos = 3_500_000_000, MemoryUsageBytes = 100, InactiveFileBytes = 40, RssBytes = 30, SwapUsageBytes = 0, ProcessCount = 2 };
        var metrics = MetricDescriptors.ForContainer(MetricDescriptors.ContainerLabels("c1", "app", "busybox"), sample, 1)
            .Concat(MetricDescriptors.ForNetwork(MetricDescriptors.PodLabels("p1"), [new InterfaceCounters("eth0", 1, 2, 3, 4, 5, 6, 7, 8)], 1))
            .ToList();

        Assert.All(metrics, m => Assert.Equal(descriptors[m.Name].LabelKeys.Count, m.LabelValues.Count));
        var byName = metrics.ToDictionary(m => m.Name);
        Assert.Equal(3UL, byName["container_cpu_usage_seconds_total"].Value.Value);
        Assert.Equal(MetricType.Counter, byName["container_cpu_usage_seconds_total"].MetricType);
        Assert.Equal(60UL, byName["container_memory_working_set_bytes"].Value.Value);
        Assert.Equal(MetricType.Gauge, byName["container_memory_working_set_bytes"].MetricType);
        Assert.Equal(0UL, byName["container_spec_memory_limit_bytes"].Value.Value);
        Assert.Equal(["p1", "POD", "", "eth0"], byName["container_network_transmit_bytes_total"].LabelValues);
        Assert.Equal(5UL, byName["container_network_transmit_bytes_total"].Value.Value);
    }
}
