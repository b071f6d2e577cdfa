using System.Diagnostics;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>Not a test: prints pod and container lifecycle latencies and the daemon's RSS with 0 and 50 pods.</summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed class LifecycleBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    private const int Iterations = 20;
    private const int ManyPods = 50;

    [BenchmarkFact]
    public async Task PodAndContainerLatenciesAndDaemonMemory()
    {
        await using var daemon = await Daemon.StartAsync();
        string image = registry.Reference(TestImageNames.Busybox);
        await daemon.PullAsync(image);
        var timings = new Dictionary<string, List<TimeSpan>>();
        async Task<T> Time<T>(string what, Func<Task<T>> call)
        {
            var clock = Stopwatch.StartNew();
            T result = await call();
            (timings.TryGetValue(what, out var list) ? list : timings[what] = []).Add(clock.Elapsed);
            return result;
        }

        for (int i = 0; i < Iterations; i++)
        {
            var pod = Cri.Pod($"bench-{i}");
            string podId = await Time("RunPodSandbox", async () => (await daemon.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod })).PodSandboxId);
            string id = await Time("CreateContainer", async () => (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = podId, Config = Cri.Container("c", image, "sleep", "3600"), SandboxConfig = pod,
            })).ContainerId);
            await Time("StartContainer", async () => await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }));
            await Time("StopContainer (timeout 10, sleep obeys SIGTERM)", async () => await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 10 }));
            await Time("RemoveContainer", async () => await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }));
            await Time("StopPodSandbox", async () => await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }));
            await Time("RemovePodSandbox", async () => await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }));
        }
        output.WriteLine($"daemon: {Daemon.Binary}; {Iterations} iterations");
        foreach (var (what, samples) in timings) output.WriteLine($"{what,-50} {Figures.Summary(samples)}");

        long idle = Figures.RssKiB(daemon.ProcessId);
        var pods = new List<string>();
        for (int i = 0; i < ManyPods; i++) pods.Add(await daemon.RunPodAsync(Cri.Pod($"many-{i}")));
        await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest());
        long loaded = Figures.RssKiB(daemon.ProcessId);
        output.WriteLine($"daemon RSS: {idle / 1024.0:F1} MiB with 0 pods, {loaded / 1024.0:F1} MiB with {ManyPods} pods");
        foreach (string podId in pods) await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }
}
