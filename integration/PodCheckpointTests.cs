using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Text.Json;
using CriShim.Integration.Harness;
using CriShim.TestImages;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class PodCheckpointTests(RegistryFixture registry)
{
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CheckpointTests.CriuCapableCrun}\"\n";
    private const UnixFileMode RootOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>
    /// Holds <paramref name="mebibytes"/> MiB, then appends the host's uptime (no time namespace, so one
    /// clock for every container) to /tmp/ticks every 50 ms: a frozen container leaves a gap.
    /// </summary>
    private static string TickerScript(int mebibytes) =>
        $"x=$(head -c {mebibytes << 20} /dev/zero | tr '\\0' a); echo ready > /tmp/ready; " +
        "while true; do read up idle < /proc/uptime; echo $up >> /tmp/ticks; sleep 0.05; done";

    private sealed record TestPod(string Id, PodSandboxConfig Config, Dictionary<string, string> Containers);

    private async Task<TestPod> StartPodAsync(Daemon daemon, string name, string handler, int mebibytes, params string[] tickers)
    {
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig, handler);
        var containers = new Dictionary<string, string>();
        foreach (string ticker in tickers)
        {
            containers[ticker] = await daemon.StartContainerAsync(podId, podConfig, Cri.Container(ticker, Busybox, "sh", "-c", TickerScript(mebibytes)));
        }
        foreach (string id in containers.Values)
        {
            await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/ready")).ExitCode == 0, TimeSpan.FromMinutes(2), "the ticker");
        }
        return new TestPod(podId, podConfig, containers);
    }

    private static CheckpointPodRequest Request(string podId, string outputPath, params string[] containerIds)
    {
        var request = new CheckpointPodRequest { PodSandboxId = podId, OutputPath = outputPath };
        request.ContainerIds.Add(containerIds);
        return request;
    }

    private static string EmptyOutputDir()
    {
        string dir = Directory.CreateTempSubdirectory("crishim-podckpt-").FullName;
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return dir;
    }

    private static double HostUptime() =>
        double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], CultureInfo.InvariantCulture);

    private static List<string> TickLines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => double.TryParse(l, CultureInfo.InvariantCulture, out _)).ToList();

    private static async Task<List<string>> TicksAsync(Daemon daemon, string id) => TickLines(await daemon.ShAsync(id, "cat /tmp/ticks"));

    /// <summary>The longest pause between two ticks that ends after <paramref name="since"/>: (last tick before, first tick after).</summary>
    private static (string Before, double Start, double End) LongestGap(List<string> ticks, double since)
    {
        var times = ticks.Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToList();
        int best = Enumerable.Range(0, times.Count - 1).Where(i => times[i + 1] > since).MaxBy(i => times[i + 1] - times[i]);
        return (ticks[best], times[best], times[best + 1]);
    }

    /// <summary>No work dir left, and each container running, ticking, none of its processes stopped.</summary>
    private static async Task AssertRunningAndTickingAsync(Daemon daemon, params IEnumerable<string> ids)
    {
        // An abandoned cut is thawed, then its work dirs are removed.
        string workDirs = Path.Combine(daemon.Dirs.Root, "checkpoints");
        await Cri.WaitUntilAsync(() => Task.FromResult(!Directory.Exists(workDirs) || Directory.GetDirectories(workDirs).Length == 0),
            TimeSpan.FromMinutes(2), "the checkpoint work dirs to be removed");
        foreach (string id in ids)
        {
            Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
            int before = (await TicksAsync(daemon, id)).Count;
            await Task.Delay(500);
            Assert.True((await TicksAsync(daemon, id)).Count > before, $"container {id} stopped ticking");
            // The tickers' short-lived `sleep` processes may end while we look.
            string states = await daemon.ShAsync(id, "cat /proc/[0-9]*/status 2>/dev/null | grep -e '^State:' -e '^TracerPid:'");
            Assert.DoesNotContain("(stopped)", states);
            Assert.DoesNotContain("(tracing stop)", states);
        }
    }

    private static async Task<Dictionary<string, byte[]>> ReadArchiveAsync(string path)
    {
        var files = new Dictionary<string, byte[]>();
        await using var stream = File.OpenRead(path);
        using var tar = new TarReader(stream);
        while (tar.GetNextEntry(copyData: true) is { } entry)
        {
            using var copy = new MemoryStream();
            entry.DataStream?.CopyTo(copy);
            files[entry.Name] = copy.ToArray();
        }
        return files;
    }

    private static string LastTickIn(byte[] rootfsDiff)
    {
        using var diff = new TarReader(new MemoryStream(rootfsDiff));
        while (diff.GetNextEntry() is { } entry)
        {
            if (entry.Name != "tmp/ticks") continue;
            using var reader = new StreamReader(entry.DataStream!);
            return TickLines(reader.ReadToEnd())[^1];
        }
        throw new InvalidOperationException("tmp/ticks is not in the rootfs diff");
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task TwoContainersAreCapturedInOneCutIntoRootOnlyArchivesAndKeepRunning(string handler)
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var pod = await StartPodAsync(daemon, $"podckpt-{handler}", handler, 16, "alpha", "beta");
        string output = EmptyOutputDir();
        double started = HostUptime();

        var clock = Stopwatch.StartNew();
        await daemon.Runtime.CheckpointPodAsync(Request(pod.Id, output, pod.Containers["alpha"], pod.Containers["beta"]),
            deadline: DateTime.UtcNow.AddSeconds(120));
        Console.WriteLine($"CheckpointPod of two containers on {handler}: {clock.Elapsed.TotalSeconds:0.000} s");

        Assert.Equal(["alpha.tar", "beta.tar", "pod.json"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order());
        foreach (string file in Directory.GetFiles(output)) Assert.Equal(RootOnlyFile, File.GetUnixFileMode(file));
        var lastCaptured = new Dictionary<string, string>();
        foreach (var (name, id) in pod.Containers)
        {
            var files = await ReadArchiveAsync(Path.Combine(output, $"{name}.tar"));
            foreach (string entry in new[] { "checkpoint/inventory.img", "config.dump", "spec.dump", "rootfs-diff.tar" })
            {
                Assert.True(files.ContainsKey(entry), $"{entry} missing from {name}.tar; it has {string.Join(", ", files.Keys)}");
            }
            using var config = JsonDocument.Parse(files["config.dump"]);
            Assert.Equal(id, config.RootElement.GetProperty("id").GetString());
            Assert.Equal(name, config.RootElement.GetProperty("name").GetString());
            Assert.Equal(handler, config.RootElement.GetProperty("runtime").GetString());
            using var spec = JsonDocument.Parse(files["spec.dump"]);
            Assert.Equal(name, spec.RootElement.GetProperty("annotations").GetProperty("io.kubernetes.cri.container-name").GetString());
            lastCaptured[name] = LastTickIn(files["rootfs-diff.tar"]);
        }

        using (var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, "pod.json"))))
        {
            var root = manifest.RootElement;
            Assert.Equal(pod.Id, root.GetProperty("podSandboxId").GetString());
            Assert.Equal($"podckpt-{handler}", root.GetProperty("metadata").GetProperty("name").GetString());
            Assert.Equal(pod.Config.Metadata.Uid, root.GetProperty("metadata").GetProperty("uid").GetString());
            Assert.Equal(handler, root.GetProperty("runtimeHandler").GetString());
            Assert.Equal(pod.Config.Hostname, root.GetProperty("podSandboxConfig").GetProperty("hostname").GetString());
            Assert.True(root.GetProperty("checkpointedTime").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-5));
            var containers = root.GetProperty("containers").EnumerateArray()
                .Select(c => (c.GetProperty("name").GetString(), c.GetProperty("id").GetString(), c.GetProperty("archive").GetString())).ToList();
            Assert.Equal([("alpha", pod.Containers["alpha"], "alpha.tar"), ("beta", pod.Containers["beta"], "beta.tar")], containers);
        }

        await AssertRunningAndTickingAsync(daemon, pod.Containers.Values);

        // One cut: each container's longest tick gap (its frozen window, as the container saw it) must
        // overlap the other's almost entirely (a slow freeze of the second under load costs a little).
        // Checkpointing one container after the other would give two disjoint gaps, each at least one
        // CRIU dump long (measured: overlap 0.02 s of 0.23 s).
        var gaps = new Dictionary<string, (string Before, double Start, double End)>();
        foreach (var (name, id) in pod.Containers) gaps[name] = LongestGap(await TicksAsync(daemon, id), started);
        var (alpha, beta) = (gaps["alpha"], gaps["beta"]);
        double overlap = Math.Min(alpha.End, beta.End) - Math.Max(alpha.Start, beta.Start);
        double shorter = Math.Min(alpha.End - alpha.Start, beta.End - beta.Start);
        Console.WriteLine($"frozen as seen by the containers: alpha {alpha.Start:0.00}-{alpha.End:0.00}, beta {beta.Start:0.00}-{beta.End:0.00}, overlap {overlap:0.00} s");
        Assert.True(shorter >= 0.2, $"a gap of only {shorter:0.00} s: the containers were not frozen for their dumps");
        Assert.True(overlap >= 0.6 * shorter, $"the frozen windows overlap {overlap:0.00} s of {shorter:0.00} s: not one cut");
        // What each archive holds is the state at the start of that window.
        foreach (var (name, gap) in gaps) Assert.Equal(gap.Before, lastCaptured[name]);

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
        Directory.Delete(output, true);
    }

    [Fact]
    public async Task InvalidRequestsFailWithTheRightCodeWritingNothingAndFreezingNothing()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var pod = await StartPodAsync(daemon, "podckpt-errors", "runc", 0, "running");
        string running = pod.Containers["running"];
        string exited = await daemon.StartContainerAsync(pod.Id, pod.Config, Cri.Container("exited", Busybox, "true"));
        await daemon.WaitForExitAsync(exited);
        var other = await StartPodAsync(daemon, "podckpt-other", "runc", 0, "elsewhere");
        string output = EmptyOutputDir();
        string nonEmpty = EmptyOutputDir();
        File.WriteAllText(Path.Combine(nonEmpty, "mine"), "the caller's");

        async Task Fails(StatusCode code, CheckpointPodRequest request)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() =>
                daemon.Runtime.CheckpointPodAsync(request, deadline: DateTime.UtcNow.AddSeconds(60)).ResponseAsync);
            Assert.True(code == e.StatusCode, $"expected {code}, got {e.StatusCode}: {e.Status.Detail}");
            Assert.Empty(Directory.GetFileSystemEntries(output));
        }

        await Fails(StatusCode.NotFound, Request("no-such-pod", output, running));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, "relative/dir", running));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, Path.Combine(output, "missing"), running));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, nonEmpty, running));
        Assert.Equal(["mine"], Directory.GetFileSystemEntries(nonEmpty).Select(Path.GetFileName));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, output));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, output, running, running));
        await Fails(StatusCode.NotFound, Request(pod.Id, output, running, "no-such-container"));
        await Fails(StatusCode.InvalidArgument, Request(pod.Id, output, running, other.Containers["elsewhere"]));
        await Fails(StatusCode.FailedPrecondition, Request(pod.Id, output, running, exited));
        var unknownOption = Request(pod.Id, output, running);
        unknownOption.Options["leave_running"] = "true";
        await Fails(StatusCode.InvalidArgument, unknownOption);
        var badValue = Request(pod.Id, output, running);
        badValue.Options["tcp_established"] = "maybe";
        await Fails(StatusCode.InvalidArgument, badValue);

        await AssertRunningAndTickingAsync(daemon, running, other.Containers["elsewhere"]);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = other.Id });
        Directory.Delete(output, true);
        Directory.Delete(nonEmpty, true);
    }

    [Fact]
    public async Task ADumpThatFailsMidCutThawsEveryContainerAndLeavesTheOutputEmpty()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var pod = await StartPodAsync(daemon, "podckpt-tcp", "runc", 0, "ticker");
        // An established TCP connection, which CRIU refuses to dump without --tcp-established (each nc
        // gets an endless stdin: busybox nc hangs up at the end of its input).
        string talker = await daemon.StartContainerAsync(pod.Id, pod.Config, Cri.Container("talker", Busybox, "sh", "-c",
            "sleep 1d | nc -l -p 7777 & sleep 0.5; sleep 1d | nc 127.0.0.1 7777"));
        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(talker, "grep", "-q", " 01 ", "/proc/net/tcp")).ExitCode == 0,
            TimeSpan.FromSeconds(30), "the TCP connection: " + File.ReadAllText(Path.Combine(pod.Config.LogDirectory, "talker.log")));
        string output = EmptyOutputDir();

        // The ticker is frozen and dumped first; the talker's dump then fails.
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointPodAsync(
            Request(pod.Id, output, pod.Containers["ticker"], talker), deadline: DateTime.UtcNow.AddSeconds(120)).ResponseAsync);
        Console.WriteLine($"failed mid-cut: {e.StatusCode}: {e.Status.Detail}");
        Assert.Contains("CRIU could not dump container " + talker, e.Status.Detail);
        Assert.Empty(Directory.GetFileSystemEntries(output));
        await AssertRunningAndTickingAsync(daemon, pod.Containers["ticker"]);
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(talker)).State);
        Assert.DoesNotContain("(stopped)", await daemon.ShAsync(talker, "cat /proc/[0-9]*/status 2>/dev/null | grep '^State:'"));

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
        Directory.Delete(output, true);
    }

    [Fact]
    public async Task TheDeadlineEndsTheCallAndTheAbandonedCutIsThawedAndCleanedUp()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var pod = await StartPodAsync(daemon, "podckpt-deadline", "runc", 512, "alpha", "beta");
        string output = EmptyOutputDir();
        string[] ids = [pod.Containers["alpha"], pod.Containers["beta"]];

        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointPodAsync(
            Request(pod.Id, output, ids), deadline: DateTime.UtcNow.AddSeconds(1)).ResponseAsync);
        Console.WriteLine($"deadline 1 s with 2 x 512 MiB: {e.StatusCode} after {clock.Elapsed.TotalSeconds:0.000} s ({e.Status.Detail})");
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);

        // The dump under way is let finish, then both containers are thawed and the work dirs removed.
        await AssertRunningAndTickingAsync(daemon, ids);
        Console.WriteLine($"clean-up done {clock.Elapsed.TotalSeconds:0.000} s after the call started");
        Assert.Empty(Directory.GetFileSystemEntries(output));
        // The line comes once the work dirs are removed and the locks released, which follows the thaw the ticking shows.
        await Cri.WaitUntilAsync(() => Task.FromResult(daemon.Output.Contains($"pod {pod.Id} thawed")), TimeSpan.FromSeconds(30),
            "the abandoned cut's clean-up to be logged");
        // The locks were released: the pod can be checkpointed afterwards.
        await daemon.Runtime.CheckpointPodAsync(Request(pod.Id, output, ids), deadline: DateTime.UtcNow.AddSeconds(300));
        Assert.Equal(3, Directory.GetFiles(output).Length);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
        Directory.Delete(output, true);
    }

    [Fact]
    public async Task DisabledCheckpointingAnswersUnimplementedNamingCheckpointPod()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[checkpoint]\nenabled = false\n");
        string output = EmptyOutputDir();
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointPodAsync(Request("any", output, "any")).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.StartsWith("method CheckpointPod not implemented", e.Status.Detail);
        Assert.Contains("checkpoint.enabled = false", e.Status.Detail);
        Directory.Delete(output, true);
    }
}
