using Runtime.V1;

namespace CriShim.Runtime.Stats;

/// <summary>
/// The cadvisor-named metrics ListPodSandboxMetrics exports, each with the figure it is made of, so
/// a descriptor and its values cannot drift apart. Labels are CRI-O's: id, name and image of the
/// container (for the pod itself: its id, "POD" and no image), plus the interface for network metrics.
/// </summary>
public static class MetricDescriptors
{
    private static readonly string[] BaseLabelKeys = ["id", "name", "image"];
    private static readonly string[] NetworkLabelKeys = [.. BaseLabelKeys, "interface"];

    private sealed record ContainerMetric(MetricDescriptor Descriptor, MetricType Type, Func<CgroupSample, ulong?> Value);

    private sealed record NetworkMetric(MetricDescriptor Descriptor, Func<InterfaceCounters, ulong> Value);

    private static readonly ContainerMetric[] ContainerMetrics =
    [
        new(Describe("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", BaseLabelKeys),
            MetricType.Counter, s => s.CpuUsageNanos / 1_000_000_000),
        new(Describe("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", BaseLabelKeys),
            MetricType.Gauge, s => s.MemoryUsageBytes),
        new(Describe("container_memory_working_set_bytes", "Current working set in bytes.", BaseLabelKeys),
            MetricType.Gauge, s => s.WorkingSetBytes),
        new(Describe("container_memory_rss", "Size of RSS in bytes.", BaseLabelKeys),
            MetricType.Gauge, s => s.RssBytes),
        new(Describe("container_memory_swap", "Container swap usage in bytes.", BaseLabelKeys),
            MetricType.Gauge, s => s.SwapUsageBytes),
        // cadvisor reports an unlimited container as 0.
        new(Describe("container_spec_memory_limit_bytes", "Memory limit for the container.", BaseLabelKeys),
            MetricType.Gauge, s => s.MemoryUsageBytes is null ? null : s.MemoryLimitBytes ?? 0),
        new(Describe("container_processes", "Number of processes running inside the container.", BaseLabelKeys),
            MetricType.Gauge, s => s.ProcessCount),
    ];

    private static readonly NetworkMetric[] NetworkMetrics =
    [
        new(Describe("container_network_receive_bytes_total", "Cumulative count of bytes received.", NetworkLabelKeys), i => i.RxBytes),
        new(Describe("container_network_receive_packets_total", "Cumulative count of packets received.", NetworkLabelKeys), i => i.RxPackets),
        new(Describe("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", NetworkLabelKeys), i => i.RxErrors),
        new(Describe("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", NetworkLabelKeys), i => i.RxDropped),
        new(Describe("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", NetworkLabelKeys), i => i.TxBytes),
        new(Describe("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", NetworkLabelKeys), i => i.TxPackets),
        new(Describe("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", NetworkLabelKeys), i => i.TxErrors),
        new(Describe("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", NetworkLabelKeys), i => i.TxDropped),
    ];

    public static IEnumerable<MetricDescriptor> All =>
        ContainerMetrics.Select(m => m.Descriptor).Concat(NetworkMetrics.Select(m => m.Descriptor));

    /// <summary>Label values of a container's metrics, in <see cref="BaseLabelKeys"/> order.</summary>
    public static string[] ContainerLabels(string id, string name, string image) => [id, name, image];

    /// <summary>The pod's own (network) metrics are labelled as its infra container, as cadvisor names it.</summary>
    public static string[] PodLabels(string podId) => [podId, "POD", ""];

    public static IEnumerable<Metric> ForContainer(string[] labels, CgroupSample sample, long timestamp) =>
        from metric in ContainerMetrics
        let value = metric.Value(sample)
        where value.HasValue
        select Build(metric.Descriptor.Name, metric.Type, labels, value.Value, timestamp);

    public static IEnumerable<Metric> ForNetwork(string[] podLabels, IEnumerable<InterfaceCounters> interfaces, long timestamp) =>
        from counters in interfaces
        from metric in NetworkMetrics
        select Build(metric.Descriptor.Name, MetricType.Counter, [.. podLabels, counters.Name], metric.Value(counters), timestamp);

    private static Metric Build(string name, MetricType type, string[] labels, ulong value, long timestamp)
    {
        var metric = new Metric { Name = name, MetricType = type, Timestamp = timestamp, Value = new UInt64Value { Value = value } };
        metric.LabelValues.Add(labels);
        return metric;
    }

    private static MetricDescriptor Describe(string name, string help, string[] labelKeys)
    {
        var descriptor = new MetricDescriptor { Name = name, Help = help };
        descriptor.LabelKeys.Add(labelKeys);
        return descriptor;
    }
}
