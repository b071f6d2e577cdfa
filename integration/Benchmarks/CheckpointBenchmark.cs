using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>
/// Not a test: for containers with 64 MiB, 256 MiB and 1 GiB of dirtied memory, prints CriShim's
/// checkpoint wall and frozen time, a bare `runc checkpoint --leave-running` of the same container,
/// and the disk's sequential write bandwidth measured in the same run.
/// </summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed partial class CheckpointBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    [GeneratedRegex(@"checkpointed container (?<id>[0-9a-f]+) to .*?: (?<bytes>\d+) bytes in (?<total>[\d.]+) s, frozen (?<frozen>[\d.]+) s")]
    private static partial Regex CheckpointLogLine();

    [BenchmarkFact]
    public async Task CheckpointWallAndFrozenTimeBesideBareRuncAndDiskBandwidth()
    {
        await using var daemon = await Daemon.StartAsync();
        string image = registry.Reference(TestImageNames.Busybox);
        await daemon.PullAsync(image);
        string archives = Directory.CreateTempSubdirectory("crishim-bench-ckpt-").FullName;
        output.WriteLine($"daemon: {Daemon.Binary}");
        output.WriteLine($"disk sequential write (dd 1 GiB, conv=fsync) in {daemon.Dirs.Root}: {await DiskBandwidthMiBps(daemon.Dirs.Root):F0} MiB/s");
        output.WriteLine($"{"memory",8} {"crishim wall",14} {"crishim frozen",16} {"archive",10} {"bare runc",12}");
        foreach (int mebibytes in new[] { 64, 256, 1024 })
        {
            var pod = Cri.Pod($"bench-ckpt-{mebibytes}");
            string podId = await daemon.RunPodAsync(pod);
            string id = await daemon.StartContainerAsync(podId, pod, Cri.Container("c", image, "sh", "-c",
                $"x=$(head -c {mebibytes << 20} /dev/zero | tr '\\0' a); echo ready > /tmp/ready; while true; do sleep 1; done"));
            await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/ready")).ExitCode == 0, TimeSpan.FromMinutes(3), "memory");

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
            long bytes = long.Parse(line.Groups["bytes"].Value);

            string bareImages = Path.Combine(archives, $"bare-{mebibytes}");
            clock.Restart();
            (await HostCommand.RunAsync("runc", ["--root", Path.Combine(daemon.Dirs.RunRoot, "runc"), "checkpoint", "--leave-running",
                "--image-path", bareImages, "--work-path", bareImages, id])).EnsureSuccess();
            var bare = clock.Elapsed;

            output.WriteLine($"{mebibytes,5} MiB {wall.TotalSeconds,12:F3} s {frozen,14:F3} s {bytes / 1048576.0,7:F0} MiB {bare.TotalSeconds,10:F3} s");
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Directory.Delete(bareImages, true);
            File.Delete(Path.Combine(archives, $"{mebibytes}.tar"));
        }
        Directory.Delete(archives, true);
    }

    private static async Task<double> DiskBandwidthMiBps(string directory)
    {
        string file = Path.Combine(directory, "bench-dd");
        var clock = Stopwatch.StartNew();
        (await HostCommand.RunAsync("dd", ["if=/dev/zero", $"of={file}", "bs=1M", "count=1024", "conv=fsync"])).EnsureSuccess();
        double seconds = clock.Elapsed.TotalSeconds;
        File.Delete(file);
        return 1024 / seconds;
    }
}
