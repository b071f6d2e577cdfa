using System.Diagnostics;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>
/// Not a test (`make bench-compare`): the same pod and container cycles as critest's benchmark (N=100, 2 in
/// parallel) against CriShim and Debian 13's containerd 1.7 in one run, the two daemons taking turns in rounds so
/// both see the same machine. Prints medians, p90 and the CriShim/containerd ratio per operation, and both
/// daemons' RSS after the same work. Both use make deps' runc and the same CNI plugins and registry.
/// </summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed class ContainerdComparisonBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    public const string ContainerdVersion = "1.7";
    private const int Cycles = 100;
    private const int Parallel = 2;
    private const int Rounds = 10;

    private static readonly string[] Operations =
    [
        "pod create", "pod stop", "pod remove", "pod whole",
        "container create", "container start", "container stop", "container remove", "container whole",
    ];

    /// <summary>One daemon under test, as the benchmark sees it: its CRI clients and its process.</summary>
    private sealed record Target(string Name, RuntimeService.RuntimeServiceClient Runtime, ImageService.ImageServiceClient Images, int ProcessId)
    {
        public Dictionary<string, List<TimeSpan>> Samples { get; } = Operations.ToDictionary(o => o, _ => new List<TimeSpan>());

        public void Record(string operation, TimeSpan elapsed)
        {
            lock (Samples) Samples[operation].Add(elapsed);
        }
    }

    [BenchmarkFact]
    public async Task PodAndContainerCyclesBesideContainerd()
    {
        string image = registry.Reference(TestImageNames.Busybox);
        await using var crishim = await Daemon.StartAsync();
        await using var containerd = await Containerd.StartAsync(ContainerdVersion, registry.Registry);
        var targets = new[]
        {
            new Target("CriShim", crishim.Runtime, crishim.Images, crishim.ProcessId),
            new Target("containerd", containerd.Runtime, containerd.Images, containerd.ProcessId),
        };
        foreach (var target in targets)
        {
            await target.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = image } });
            // containerd pulls its sandbox image on the first RunPodSandbox: one warm-up cycle each keeps that out.
            await PodCycleAsync(target, 0, record: false);
        }
        var idle = targets.ToDictionary(t => t.Name, t => Figures.RssKiB(t.ProcessId));

        for (int round = 0; round < Rounds; round++)
        {
            // Take turns, and swap who goes first each round.
            foreach (var target in round % 2 == 0 ? targets : targets.Reverse())
            {
                var indexes = Enumerable.Range(round * Cycles / Rounds, Cycles / Rounds);
                var options = new ParallelOptions { MaxDegreeOfParallelism = Parallel };
                await System.Threading.Tasks.Parallel.ForEachAsync(indexes, options, async (i, _) => await PodCycleAsync(target, i, record: true));
                await System.Threading.Tasks.Parallel.ForEachAsync(indexes, options, async (i, _) => await ContainerCycleAsync(target, i, image));
            }
        }

        var version = await containerd.Runtime.VersionAsync(new VersionRequest());
        output.WriteLine($"{Cycles} cycles each, {Parallel} in parallel, in {Rounds} alternating rounds; {Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd}");
        output.WriteLine($"CriShim {crishim.ProcessId}: {Daemon.Binary}");
        output.WriteLine($"containerd {version.RuntimeVersion} ({Containerd.Binary(ContainerdVersion)}); both on {RuncVersion()}");
        output.WriteLine($"{"operation",-18} {"containerd median",18} {"p90",9} {"CriShim median",15} {"p90",9} {"ratio",7}");
        foreach (string operation in Operations)
        {
            var ours = targets[0].Samples[operation];
            var theirs = targets[1].Samples[operation];
            double ourMedian = Figures.Percentile(ours, 0.5).TotalMilliseconds, theirMedian = Figures.Percentile(theirs, 0.5).TotalMilliseconds;
            output.WriteLine($"{operation,-18} {theirMedian,15:F1} ms {Figures.Percentile(theirs, 0.9).TotalMilliseconds,6:F1} ms"
                + $" {ourMedian,12:F1} ms {Figures.Percentile(ours, 0.9).TotalMilliseconds,6:F1} ms {ourMedian / theirMedian,6:F2}x");
        }
        long ourRss = Figures.RssKiB(targets[0].ProcessId), theirRss = Figures.RssKiB(targets[1].ProcessId);
        output.WriteLine($"{"daemon RSS",-18} {theirRss / 1024.0,15:F1} MB {"",9} {ourRss / 1024.0,12:F1} MB {"",9} {(double)ourRss / theirRss,6:F2}x"
            + $"   (idle after warm-up: containerd {idle["containerd"] / 1024.0:F1} MB, CriShim {idle["CriShim"] / 1024.0:F1} MB)");
    }

    private static async Task PodCycleAsync(Target target, int index, bool record)
    {
        var pod = Cri.Pod($"cmp-pod-{index}");
        var whole = Stopwatch.StartNew();
        string podId = await TimeAsync(target, "pod create", record, async () => (await target.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod })).PodSandboxId);
        await TimeAsync(target, "pod stop", record, async () => await target.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }));
        await TimeAsync(target, "pod remove", record, async () => await target.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }));
        if (record) target.Record("pod whole", whole.Elapsed);
        Directory.Delete(pod.LogDirectory, recursive: true);
    }

    /// <summary>In a pod made for it (not timed): create, start, stop, remove a container that ends on SIGTERM.</summary>
    private static async Task ContainerCycleAsync(Target target, int index, string image)
    {
        var pod = Cri.Pod($"cmp-ctr-{index}");
        string podId = (await target.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod })).PodSandboxId;
        var config = Cri.Container("c", image, "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait");
        var whole = Stopwatch.StartNew();
        string id = await TimeAsync(target, "container create", true, async () => (await target.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = config, SandboxConfig = pod,
        })).ContainerId);
        await TimeAsync(target, "container start", true, async () => await target.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }));
        await TimeAsync(target, "container stop", true, async () => await target.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 10 }));
        await TimeAsync(target, "container remove", true, async () => await target.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }));
        target.Record("container whole", whole.Elapsed);
        await target.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await target.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(pod.LogDirectory, recursive: true);
    }

    private static async Task<T> TimeAsync<T>(Target target, string operation, bool record, Func<Task<T>> call)
    {
        var clock = Stopwatch.StartNew();
        T result = await call();
        if (record) target.Record(operation, clock.Elapsed);
        return result;
    }

    /// <summary>make deps' runc: the default runc handler of both daemons (scripts/containerd.sh names it too).</summary>
    private static string RuncVersion() => TestNetwork.Run("/opt/crishim/runc/bin/runc", "--version").Split('\n')[0];
}
