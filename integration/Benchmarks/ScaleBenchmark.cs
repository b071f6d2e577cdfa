using System.Diagnostics;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>
/// Not a test (`make bench-scale`): 100 pods of 2 busybox sleepers each, brought up 2 at a time. With 0, 50
/// and 100 pods up it prints the median and p90 of the calls a kubelet polls (lists, statuses, stats) and
/// the daemon's RSS, and how each grew: from 0 pods to 100 for the lists, from 50 to 100 for everything
/// (twice the pods, so at most 2× when the cost grows linearly). Then it tears every pod down.
/// </summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed class ScaleBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    private const int Pods = 100;
    private const int ContainersPerPod = 2;
    private const int Parallel = 2;
    private const int Samples = 20;
    private static readonly int[] Levels = [0, Pods / 2, Pods];

    private sealed record UpPod(string Id, PodSandboxConfig Config, string[] ContainerIds);

    [BenchmarkFact]
    public async Task PollingLatenciesAndMemoryWith0And50And100Pods()
    {
        await using var daemon = await Daemon.StartAsync();
        string image = registry.Reference(TestImageNames.Busybox);
        await daemon.PullAsync(image);
        var runtime = daemon.Runtime;
        var up = new List<UpPod>();
        // call -> level -> samples; a status call has no subject with 0 pods.
        var figures = new Dictionary<string, Dictionary<int, List<TimeSpan>>>();
        var rss = new Dictionary<int, long>();
        var bringUp = new List<TimeSpan>();
        try
        {
            foreach (int level in Levels)
            {
                var clock = Stopwatch.StartNew();
                var added = new List<UpPod>();
                await System.Threading.Tasks.Parallel.ForEachAsync(Enumerable.Range(up.Count, level - up.Count),
                    new ParallelOptions { MaxDegreeOfParallelism = Parallel }, async (i, _) =>
                    {
                        var pod = await BringUpAsync(daemon, image, i);
                        lock (added) added.Add(pod);
                    });
                up.AddRange(added);
                if (added.Count > 0) bringUp.Add(clock.Elapsed / added.Count);
                await MeasureAsync(runtime, up, level, figures);
                rss[level] = Figures.RssKiB(daemon.ProcessId);
            }

            output.WriteLine($"daemon: {Daemon.Binary}; {ContainersPerPod} containers per pod, {Parallel} brought up at once; {Samples} samples per call and level; "
                + $"{Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd}");
            output.WriteLine($"bring-up per pod (pod + {ContainersPerPod} containers, {Parallel} in parallel): "
                + string.Join(", ", bringUp.Select((t, i) => $"{t.TotalMilliseconds:F0} ms for pods {Levels[i]}..{Levels[i + 1]}")));
            output.WriteLine($"{"call",-22} {string.Join(" ", Levels.Select(l => $"{$"{l} pods median / p90",24}"))} {"100/0",7} {"100/50",7}");
            foreach (var (call, byLevel) in figures)
            {
                string Cell(int level) => byLevel.TryGetValue(level, out var s)
                    ? $"{Figures.Percentile(s, 0.5).TotalMilliseconds,10:F2} / {Figures.Percentile(s, 0.9).TotalMilliseconds,8:F2} ms"
                    : $"{"-",24}";
                string Growth(int from) => byLevel.TryGetValue(from, out var s)
                    ? $"{Figures.Percentile(byLevel[Pods], 0.5) / Figures.Percentile(s, 0.5),6:F2}x"
                    : $"{"-",7}";
                output.WriteLine($"{call,-22} {string.Join(" ", Levels.Select(Cell))} {Growth(0)} {Growth(Pods / 2)}");
            }
            output.WriteLine($"{"daemon RSS",-22} {string.Join(" ", Levels.Select(l => $"{rss[l] / 1024.0,21:F1} MB"))} "
                + $"{(double)rss[Pods] / rss[0],6:F2}x {(double)rss[Pods] / rss[Pods / 2],6:F2}x");
        }
        finally
        {
            await System.Threading.Tasks.Parallel.ForEachAsync(up, new ParallelOptions { MaxDegreeOfParallelism = Parallel }, async (pod, _) =>
            {
                await runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id });
                await runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
                Directory.Delete(pod.Config.LogDirectory, recursive: true);
            });
        }
    }

    private static async Task<UpPod> BringUpAsync(Daemon daemon, string image, int index)
    {
        var pod = Cri.Pod($"scale-{index}");
        string podId = await daemon.RunPodAsync(pod);
        var ids = new string[ContainersPerPod];
        for (int c = 0; c < ContainersPerPod; c++)
        {
            ids[c] = await daemon.StartContainerAsync(podId, pod, Cri.Container($"sleeper-{c}", image, "sleep", "3600"));
        }
        return new UpPod(podId, pod, ids);
    }

    /// <summary>Each call <see cref="Samples"/> times, in turns; the status calls on a different pod or container each time.</summary>
    private static async Task MeasureAsync(RuntimeService.RuntimeServiceClient runtime, List<UpPod> up, int level,
        Dictionary<string, Dictionary<int, List<TimeSpan>>> figures)
    {
        async Task Time(string call, Func<Task> action)
        {
            var clock = Stopwatch.StartNew();
            await action();
            var byLevel = figures.TryGetValue(call, out var found) ? found : figures[call] = [];
            (byLevel.TryGetValue(level, out var samples) ? samples : byLevel[level] = []).Add(clock.Elapsed);
        }

        for (int i = 0; i < Samples; i++)
        {
            await Time("ListPodSandbox", async () => await runtime.ListPodSandboxAsync(new ListPodSandboxRequest()));
            await Time("ListContainers", async () => await runtime.ListContainersAsync(new ListContainersRequest()));
            await Time("ListContainerStats", async () => await runtime.ListContainerStatsAsync(new ListContainerStatsRequest()));
            await Time("ListPodSandboxStats", async () => await runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest()));
            if (up.Count == 0) continue;
            var pod = up[i * 7 % up.Count];
            string containerId = pod.ContainerIds[i % ContainersPerPod];
            await Time("PodSandboxStatus", async () => await runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod.Id }));
            await Time("ContainerStatus", async () => await runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = containerId }));
            await Time("PodSandboxStats", async () => await runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = pod.Id }));
            await Time("ContainerStats", async () => await runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = containerId }));
        }
    }
}
