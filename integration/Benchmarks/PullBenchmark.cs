using System.Diagnostics;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>A fact that only runs when CRISHIM_BENCH=1 (make bench), so make test stays quick.</summary>
public sealed class BenchmarkFactAttribute : FactAttribute
{
    public BenchmarkFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CRISHIM_BENCH") != "1") Skip = "a benchmark: run it with make bench";
    }
}

/// <summary>Not a test: prints how long PullImage of ~100 MiB in 5 layers takes, cold and warm, beside skopeo copy.</summary>
[Trait("Category", "Benchmark")]
public sealed class PullBenchmark(ITestOutputHelper output)
{
    private const int Runs = 3;

    [BenchmarkFact]
    public async Task PullOfA100MiBImageColdWarmAndBySkopeo()
    {
        await using var registry = await TestRegistry.StartAsync();
        var big = TestImageSet.Big().Single();
        using (var client = registry.CreateClient()) await client.PushAsync(big);
        string reference = registry.Reference(big.Name);
        long bytes = big.Image.Config.Size + big.Image.Layers.Sum(layer => layer.Blob.Size);

        var cold = new List<TimeSpan>();
        var warm = new List<TimeSpan>();
        var skopeo = new List<TimeSpan>();
        for (int run = 0; run < Runs; run++)
        {
            await using (var daemon = await Daemon.StartAsync())
            {
                var request = new PullImageRequest { Image = new ImageSpec { Image = reference } };
                cold.Add(await TimeAsync(async () => Assert.Equal(big.ImageId, (await daemon.Images.PullImageAsync(request)).ImageRef)));
                warm.Add(await TimeAsync(async () => Assert.Equal(big.ImageId, (await daemon.Images.PullImageAsync(request)).ImageRef)));
            }
            string target = Directory.CreateTempSubdirectory("crishim-skopeo-").FullName;
            skopeo.Add(await TimeAsync(async () =>
                (await HostCommand.RunAsync("skopeo", ["copy", "--src-tls-verify=false", $"docker://{reference}", $"dir:{target}"])).EnsureSuccess()));
            Directory.Delete(target, recursive: true);
        }

        output.WriteLine($"PullImage of {reference}: {big.Image.Layers.Count} layers, {bytes / (1024.0 * 1024):F1} MiB compressed; median of {Runs} runs");
        output.WriteLine($"daemon: {Daemon.Binary}");
        Report("crishim cold pull (download, verify, unpack)", cold, bytes);
        Report("crishim warm pull (all content present)", warm, bytes);
        Report("skopeo copy to dir: (download, verify; no unpack)", skopeo, bytes);
    }

    private static async Task<TimeSpan> TimeAsync(Func<Task> action)
    {
        var clock = Stopwatch.StartNew();
        await action();
        return clock.Elapsed;
    }

    private void Report(string what, List<TimeSpan> times, long bytes)
    {
        var median = times.Order().ElementAt(times.Count / 2);
        output.WriteLine($"  {what,-52} {median.TotalMilliseconds,8:F0} ms  {bytes / (1024.0 * 1024) / median.TotalSeconds,8:F1} MiB/s  (runs: {string.Join(", ", times.Select(t => $"{t.TotalMilliseconds:F0}"))} ms)");
    }
}
