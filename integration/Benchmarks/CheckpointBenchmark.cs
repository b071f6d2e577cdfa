using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>
/// Not a test: for containers with 64 MiB, 256 MiB and 1 GiB of dirtied memory (CRISHIM_BENCH_CHECKPOINT_MIB="1024"
/// narrows it), prints CriShim's checkpoint wall and frozen time beside the floor measured in the same run: a
/// bare `runc checkpoint --leave-running` of the same container into a directory of the state root's filesystem
/// (where CriShim's own images would go) plus one durable write (dd conv=fsync) of as many bytes as CriShim's
/// archive, beside it; then the ratio, and where CriShim's time went (its debug phase lines).
/// </summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed partial class CheckpointBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    [GeneratedRegex(@"checkpointed container (?<id>[0-9a-f]+) to .*?: (?<bytes>\d+) bytes in (?<total>[\d.]+) s, frozen (?<frozen>[\d.]+) s")]
    private static partial Regex CheckpointLogLine();

    private static int[] Sizes() =>
        Environment.GetEnvironmentVariable("CRISHIM_BENCH_CHECKPOINT_MIB") is { Length: > 0 } sizes
            ? [.. sizes.Split(',').Select(int.Parse)]
            : [64, 256, 1024];

    [BenchmarkFact]
    public async Task CheckpointWallAndFrozenTimeBesideItsFloor()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[server]\nlog_level = \"debug\"\n");
        string image = registry.Reference(TestImageNames.Busybox);
        await daemon.PullAsync(image);
        string archives = Directory.CreateTempSubdirectory("crishim-bench-ckpt-").FullName;
        output.WriteLine($"daemon: {Daemon.Binary}; {Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd}");
        output.WriteLine($"{"memory",8} {"archive",10} {"crishim wall",14} {"frozen",9} {"bare runc",11} {"+ write",9} {"= floor",9} {"ratio",6}");
        foreach (int mebibytes in Sizes())
        {
            var pod = Cri.Pod($"bench-ckpt-{mebibytes}");
            string podId = await daemon.RunPodAsync(pod);
            string id = await daemon.StartContainerAsync(podId, pod, Cri.Container("c", image, "sh", "-c",
                $"x=$(head -c {mebibytes << 20} /dev/zero | tr '\\0' a); echo ready > /tmp/ready; while true; do sleep 1; done"));
            await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/ready")).ExitCode == 0, TimeSpan.FromMinutes(3), "memory");

            int logBefore = daemon.Output.Length;
            var clock = Stopwatch.StartNew();
            await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest
            {
                ContainerId = id, Location = Path.Combine(archives, $"{mebibytes}.tar"), Timeout = 600,
            });
            var wall = clock.Elapsed;
            await Cri.WaitUntilAsync(() => Task.FromResult(CheckpointLogLine().Matches(daemon.Output).Any(m => m.Groups["id"].Value == id)),
                TimeSpan.FromSeconds(10), "the checkpoint log line");
            var line = CheckpointLogLine().Matches(daemon.Output).Last(m => m.Groups["id"].Value == id);
            double frozen = double.Parse(line.Groups["frozen"].Value, CultureInfo.InvariantCulture);
            // Only this container is checkpointed meanwhile: every phase logged since is its own.
            string phases = Figures.Phases(daemon.Output[logBefore..]);
            long bytes = long.Parse(line.Groups["bytes"].Value);
            File.Delete(Path.Combine(archives, $"{mebibytes}.tar"));

            // The floor: CRIU's dump into the state root's filesystem, then one durable write of the archive's size.
            string bareImages = Path.Combine(daemon.Dirs.Root, $"bench-bare-{mebibytes}");
            clock.Restart();
            (await HostCommand.RunAsync("runc", ["--root", Path.Combine(daemon.Dirs.RunRoot, "runc"), "checkpoint", "--leave-running",
                "--image-path", bareImages, "--work-path", bareImages, id])).EnsureSuccess();
            var bare = clock.Elapsed;
            Directory.Delete(bareImages, true);
            var write = await DurableWriteAsync(Path.Combine(archives, "bench-dd"), bytes);

            var floor = bare + write;
            output.WriteLine($"{mebibytes,5} MiB {bytes / 1048576.0,6:F0} MiB {wall.TotalSeconds,12:F3} s {frozen,7:F3} s {bare.TotalSeconds,9:F3} s "
                + $"{write.TotalSeconds,7:F3} s {floor.TotalSeconds,7:F3} s {wall / floor,5:F2}x");
            output.WriteLine($"          crishim's phases: {phases}");
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        Directory.Delete(archives, true);
    }

    /// <summary>Writes <paramref name="bytes"/> (rounded up to a MiB) with dd and fsyncs them, as the archive's one durable write.</summary>
    private static async Task<TimeSpan> DurableWriteAsync(string file, long bytes)
    {
        var clock = Stopwatch.StartNew();
        (await HostCommand.RunAsync("dd", ["if=/dev/zero", $"of={file}", "bs=1M", $"count={(bytes + 1048575) >> 20}", "conv=fsync"])).EnsureSuccess();
        var elapsed = clock.Elapsed;
        File.Delete(file);
        return elapsed;
    }
}
