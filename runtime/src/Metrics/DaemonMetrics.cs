using System.Diagnostics;
using System.Diagnostics.Metrics;
using CriShim.Runtime.Checkpoint;

namespace CriShim.Runtime.Metrics;

/// <summary>
/// The daemon's instruments, named as they are exported. Recording costs next to nothing while no
/// <see cref="PrometheusExporter"/> listens (metrics.address unset).
/// </summary>
public static class DaemonMetrics
{
    public const string MeterName = "CriShim";

    private static readonly Meter Meter = new(MeterName);

    private static readonly double[] SecondsBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
    private static readonly double[] BytesBuckets = [.. Enumerable.Range(0, 8).Select(i => (double)(1L << (20 + 2 * i)))]; // 1 MiB .. 16 GiB

    private static Histogram<double> Seconds(string name, string help) =>
        Meter.CreateHistogram(name, "s", help, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    private static readonly Counter<long> RpcHandled = Meter.CreateCounter<long>("crishim_grpc_server_handled_total", description:
        "CRI RPCs completed, by service, method and gRPC status code.");
    private static readonly Histogram<double> RpcSeconds = Seconds("crishim_grpc_server_handling_seconds",
        "Time from the start to the end of a CRI RPC (streaming RPCs included), by service and method.");

    private static readonly Counter<long> Checkpoints = Meter.CreateCounter<long>("crishim_checkpoints_total", description:
        "CheckpointContainer and CheckpointPod requests by kind (container, pod) and outcome (success, timeout, failure).");
    private static readonly Histogram<double> CheckpointArchiveBytes = Meter.CreateHistogram("crishim_checkpoint_archive_bytes", "By",
        "Size of each checkpoint archive written, one per container.", tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = BytesBuckets });
    private static readonly Histogram<double> CheckpointSeconds = Seconds("crishim_checkpoint_duration_seconds",
        "Wall time of each container's checkpoint, from the request to its archive written.");
    private static readonly Histogram<double> CheckpointFrozenSeconds = Seconds("crishim_checkpoint_frozen_seconds",
        "Time each checkpointed container spent frozen.");

    private static readonly Counter<long> PulledBytes = Meter.CreateCounter<long>("crishim_image_pull_bytes_total", description:
        "Bytes fetched from registries and verified: manifests, configs and layer blobs that were not stored yet.");
    private static readonly Histogram<double> PullSeconds = Seconds("crishim_image_pull_duration_seconds",
        "Time of each image pull (PullImage, or a restore's of its checkpoint image), by outcome (success, failure).");

    public static void RpcCompleted(string service, string method, string code, TimeSpan elapsed)
    {
        RpcHandled.Add(1, new("grpc_service", service), new("grpc_method", method), new("grpc_code", code));
        RpcSeconds.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("grpc_service", service), new("grpc_method", method));
    }

    /// <summary>Runs a checkpoint and records its outcome and, on success, each archive's size and times.</summary>
    public static async Task ObserveCheckpointAsync(string kind, Func<Task<IReadOnlyList<CheckpointResult>>> checkpoint)
    {
        IReadOnlyList<CheckpointResult> results;
        try
        {
            results = await checkpoint();
        }
        catch (Exception e)
        {
            Checkpoints.Add(1, new("kind", kind), new("outcome", e is TimeoutException ? "timeout" : "failure"));
            throw;
        }
        Checkpoints.Add(1, new("kind", kind), new("outcome", "success"));
        foreach (var result in results)
        {
            CheckpointArchiveBytes.Record(result.Bytes);
            CheckpointSeconds.Record(result.Total.TotalSeconds);
            CheckpointFrozenSeconds.Record(result.Frozen.TotalSeconds);
        }
    }

    public static void Pulled(long bytes) => PulledBytes.Add(bytes);

    /// <summary>Runs a pull and records its time by outcome.</summary>
    public static async Task<T> ObservePullAsync<T>(Func<Task<T>> pull)
    {
        long start = Stopwatch.GetTimestamp();
        string outcome = "failure";
        try
        {
            var result = await pull();
            outcome = "success";
            return result;
        }
        finally
        {
            PullSeconds.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    /// <summary>Gauges read from the stores at each scrape; created once, by the metrics endpoint.</summary>
    public static void ObserveStores(Func<IEnumerable<Measurement<long>>> containersByState, Func<IEnumerable<Measurement<long>>> podsByState)
    {
        Meter.CreateObservableGauge("crishim_containers", containersByState, description: "Containers known to the runtime, by state.");
        Meter.CreateObservableGauge("crishim_pod_sandboxes", podsByState, description: "Pod sandboxes known to the runtime, by state.");
    }
}
