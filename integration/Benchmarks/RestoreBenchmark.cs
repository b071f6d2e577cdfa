using System.Diagnostics;
using System.Text.Json.Nodes;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration.Benchmarks;

/// <summary>
/// Not a test: for containers with 64 MiB, 256 MiB and 1 GiB of dirtied memory (CRISHIM_BENCH_RESTORE_MIB="64,256"
/// narrows it), prints CriShim's restore wall time (CreateContainer with the archive's path + StartContainer,
/// in a new pod) beside a bare `runc restore -d` of the same CRIU images (make deps' runc, --file-locks as
/// CriShim passes) in a bundle made from the archive's spec.dump: the checkpointed container's own rootfs,
/// bind mount sources and network namespace (it keeps running, as a checkpoint leaves it), a cgroup and a fresh
/// pid namespace of its own (the dumped one is the pod's, where the checkpointed pids are taken).
/// Bare runc's figure has no archive to unpack, no image lookup and no conmon: it is the floor. Where CriShim's
/// time went follows each line (its debug phase lines).
/// </summary>
[Trait("Category", "Benchmark")]
[Collection(RegistryCollection.Name)]
public sealed class RestoreBenchmark(RegistryFixture registry, ITestOutputHelper output)
{
    private const string Runc = "/opt/crishim/runc/bin/runc";

    private static int[] Sizes() =>
        Environment.GetEnvironmentVariable("CRISHIM_BENCH_RESTORE_MIB") is { Length: > 0 } sizes
            ? [.. sizes.Split(',').Select(int.Parse)]
            : [64, 256, 1024];

    [BenchmarkFact]
    public async Task RestoreWallTimeBesideBareRuncRestore()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[server]\nlog_level = \"debug\"\n");
        string image = registry.Reference(TestImageNames.Busybox);
        await daemon.PullAsync(image);
        string work = Directory.CreateTempSubdirectory("crishim-bench-restore-").FullName;
        output.WriteLine($"daemon: {Daemon.Binary}; runc: {Runc}; {Environment.ProcessorCount} cores");
        output.WriteLine($"{"memory",8} {"archive",10} {"create",10} {"start",10} {"crishim restore",16} {"bare runc restore",18} {"ratio",6}");
        try
        {
            foreach (int mebibytes in Sizes())
            {
                var pod = Cri.Pod($"bench-restore-{mebibytes}");
                string podId = await daemon.RunPodAsync(pod);
                string id = await daemon.StartContainerAsync(podId, pod, Cri.Container("c", image, "sh", "-c",
                    $"x=$(head -c {mebibytes << 20} /dev/zero | tr '\\0' a); echo ready > /tmp/ready; while true; do sleep 1; done"));
                await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/ready")).ExitCode == 0, TimeSpan.FromMinutes(3), "memory");
                string archive = Path.Combine(work, $"{mebibytes}.tar");
                await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = archive, Timeout = 600 });

                var (create, start, phases) = await CriShimRestoreAsync(daemon, archive, mebibytes);
                var bare = await BareRuncRestoreAsync(archive, Path.Combine(work, $"bare-{mebibytes}"), $"bench-restore-{mebibytes}");
                var crishim = create + start;
                output.WriteLine($"{mebibytes,5} MiB {new FileInfo(archive).Length / 1048576.0,6:F0} MiB {create.TotalSeconds,8:F3} s {start.TotalSeconds,8:F3} s " +
                    $"{crishim.TotalSeconds,14:F3} s {bare.TotalSeconds,16:F3} s {crishim / bare,5:F2}x");
                output.WriteLine($"          crishim's phases: {phases}");

                await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
                await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
                File.Delete(archive);
            }
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }

    /// <summary>
    /// CreateContainer with image = the archive's path in a new pod, then StartContainer, and the phases the daemon
    /// logged meanwhile; the pod goes afterwards.
    /// </summary>
    private static async Task<(TimeSpan Create, TimeSpan Start, string Phases)> CriShimRestoreAsync(Daemon daemon, string archive, int mebibytes)
    {
        var pod = Cri.Pod($"bench-restored-{mebibytes}");
        string podId = await daemon.RunPodAsync(pod);
        int logBefore = daemon.Output.Length;
        var clock = Stopwatch.StartNew();
        string id = (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("c", archive), SandboxConfig = pod,
        }, deadline: DateTime.UtcNow.AddMinutes(10))).ContainerId;
        var create = clock.Elapsed;
        clock.Restart();
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }, deadline: DateTime.UtcNow.AddMinutes(10));
        var start = clock.Elapsed;
        string phases = Figures.Phases(daemon.Output[logBefore..]);
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        return (create, start, phases);
    }

    /// <summary>
    /// `runc restore -d` of the archive's CRIU images, timed alone (unpacking the images and writing the bundle are not);
    /// the restored container is killed and deleted afterwards.
    /// </summary>
    private static async Task<TimeSpan> BareRuncRestoreAsync(string archive, string directory, string name)
    {
        string bundle = Path.Combine(directory, "bundle");
        string images = Path.Combine(directory, "checkpoint");
        string state = Path.Combine(directory, "runc");
        Directory.CreateDirectory(bundle);
        Directory.CreateDirectory(state);
        (await HostCommand.RunAsync("tar", ["-xf", archive, "-C", directory, "checkpoint", "spec.dump"])).EnsureSuccess();
        var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "spec.dump")))!.AsObject();
        spec["linux"]!["cgroupsPath"] = $"/crishim-bench-{name}"; // runc delete removes it
        using var pidNamespace = Process.Start("unshare", ["--pid", "--fork", "sleep", "infinity"]);
        string log = Path.Combine(directory, "runc.log");
        try
        {
            string holder = "";
            await Cri.WaitUntilAsync(() => Task.FromResult((holder = File.ReadAllText($"/proc/{pidNamespace.Id}/task/{pidNamespace.Id}/children").Trim()).Length > 0),
                TimeSpan.FromSeconds(30), "the pid namespace's first process");
            foreach (var ns in spec["linux"]!["namespaces"]!.AsArray())
            {
                if ((string?)ns!["type"] == "pid") ns["path"] = $"/proc/{holder}/ns/pid";
            }
            File.WriteAllText(Path.Combine(bundle, "config.json"), spec.ToJsonString());
            var clock = Stopwatch.StartNew();
            // The restored process inherits runc's stdio (its dumped pipes): /dev/null, so nothing here waits on it.
            var result = await HostCommand.RunAsync("sh", ["-c", "exec \"$0\" \"$@\" </dev/null >/dev/null 2>&1", Runc, "--root", state, "--log", log,
                "restore", "-d", "--file-locks", "--image-path", images, "--work-path", directory, "--bundle", bundle, name], TimeSpan.FromMinutes(10));
            var elapsed = clock.Elapsed;
            if (result.ExitCode != 0)
            {
                string restoreLog = Path.Combine(directory, "restore.log");
                throw new InvalidOperationException($"runc restore exited {result.ExitCode}: {(File.Exists(log) ? File.ReadAllText(log) : "")}\n" +
                    $"{(File.Exists(restoreLog) ? string.Join('\n', File.ReadLines(restoreLog).TakeLast(20)) : "")}");
            }
            return elapsed;
        }
        finally
        {
            await HostCommand.RunAsync(Runc, ["--root", state, "delete", "--force", name]);
            pidNamespace.Kill(entireProcessTree: true);
            Directory.Delete(directory, true);
        }
    }
}
