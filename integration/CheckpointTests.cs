using System.Diagnostics;
using System.Formats.Tar;
using System.Text.Json;
using CriShim.TestImages;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class CheckpointTests(RegistryFixture registry)
{
    /// <summary>Debian's crun 1.8.1 has no CRIU support; make deps builds a CRIU-capable crun here.</summary>
    public const string CriuCapableCrun = "/opt/crishim/crun/bin/crun";
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CriuCapableCrun}\"\n";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>A shell that holds <paramref name="mebibytes"/> MiB of 'a' bytes in a variable and counts in /tmp/count every 100 ms.</summary>
    private static string CounterScript(int mebibytes) =>
        $"x=$(head -c {mebibytes << 20} /dev/zero | tr '\\0' a); echo ready > /tmp/ready; i=0; " +
        "while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done";

    private async Task<(string PodId, string ContainerId)> StartCounterAsync(Daemon daemon, string handler, int mebibytes, string name)
    {
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig, handler);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("counter", Busybox, "sh", "-c", CounterScript(mebibytes)));
        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/ready")).ExitCode == 0, TimeSpan.FromMinutes(2), "the memory pattern");
        return (podId, id);
    }

    /// <summary>The counter; a read that races the shell's truncate-and-write is retried.</summary>
    private static async Task<long> CountAsync(Daemon daemon, string id)
    {
        for (int attempt = 0; ; attempt++)
        {
            if (long.TryParse(await daemon.ShAsync(id, "cat /tmp/count"), out long count) || attempt == 10) return count;
            await Task.Delay(20);
        }
    }

    /// <summary>The container is running and counting, and none of its processes is stopped or traced.
    /// (The counter's short-lived processes may vanish between the glob and the read: cat skips them.)</summary>
    private static async Task AssertRunningAndCountingAsync(Daemon daemon, string id)
    {
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        long before = await CountAsync(daemon, id);
        await Task.Delay(700);
        Assert.True(await CountAsync(daemon, id) > before, "the counter stopped");
        string states = await daemon.ShAsync(id, "cat /proc/[0-9]*/status 2>/dev/null | grep -e '^State:' -e '^TracerPid:'");
        Assert.DoesNotContain("(stopped)", states);
        Assert.DoesNotContain("(tracing stop)", states);
        Assert.All(states.Split('\n').Where(l => l.StartsWith("TracerPid:")), l => Assert.Equal("TracerPid:\t0", l));
        // A killed CRIU may take a moment to be reaped by init; a dumping one (`criu swrk`, started by the runtime) after that is a leak.
        await Cri.WaitUntilAsync(() => Task.FromResult(DumpingCriuProcesses().Count == 0), TimeSpan.FromSeconds(10),
            "CRIU processes to end: " + string.Join(", ", DumpingCriuProcesses()));
    }

    private static List<int> DumpingCriuProcesses()
    {
        var pids = new List<int>();
        foreach (var process in Process.GetProcessesByName("criu"))
        {
            try
            {
                if (File.ReadAllText($"/proc/{process.Id}/cmdline").Contains("swrk", StringComparison.Ordinal)) pids.Add(process.Id);
            }
            catch (IOException)
            {
                // Ended while we looked.
            }
        }
        return pids;
    }

    private static string KubeletLocation(string directory, string pod) =>
        Path.Combine(directory, $"checkpoint-{pod}_crishim-it-counter-{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ}.tar");

    private static string KubeletCheckpointDir()
    {
        string dir = Path.Combine(Directory.CreateTempSubdirectory("crishim-kubelet-").FullName, "checkpoints");
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return dir;
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ARunningContainerIsDumpedIntoARootOnlyArchiveAndKeepsRunning(string handler)
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartCounterAsync(daemon, handler, 64, $"ckpt-{handler}");
        await daemon.ShAsync(id, "echo changed > /etc/added-file; rm /etc/group");
        string dir = KubeletCheckpointDir();
        string location = KubeletLocation(dir, $"ckpt-{handler}");

        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 120 },
            deadline: DateTime.UtcNow.AddSeconds(120));

        var info = new FileInfo(location);
        Assert.True(info.Exists);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, info.UnixFileMode);
        Assert.Single(Directory.GetFiles(dir));
        var entries = new Dictionary<string, TarEntry>();
        var contents = new Dictionary<string, byte[]>();
        await using (var stream = File.OpenRead(location))
        {
            using var tar = new TarReader(stream);
            while (tar.GetNextEntry(copyData: true) is { } entry)
            {
                entries[entry.Name] = entry;
                if (entry.DataStream is { } data && entry.Name is "config.dump" or "spec.dump" or "deleted.files" or "rootfs-diff.tar")
                {
                    using var copy = new MemoryStream();
                    data.CopyTo(copy);
                    contents[entry.Name] = copy.ToArray();
                }
            }
        }
        Assert.Equal(TarEntryType.Directory, entries["checkpoint/"].EntryType);
        foreach (string name in new[] { "checkpoint/inventory.img", "config.dump", "spec.dump", "stats-dump", "dump.log", "bind.mounts", "rootfs-diff.tar", "deleted.files", "container.log" })
        {
            Assert.True(entries.ContainsKey(name), $"{name} missing; archive has {string.Join(", ", entries.Keys)}");
        }
        Assert.DoesNotContain(entries.Keys, n => n.StartsWith("./", StringComparison.Ordinal));
        long pages = entries.Where(e => e.Key.StartsWith("checkpoint/pages-", StringComparison.Ordinal)).Sum(e => e.Value.Length);
        Assert.True(pages >= 64L << 20, $"CRIU pages hold {pages} bytes, less than the 64 MiB pattern");

        using var config = JsonDocument.Parse(contents["config.dump"]);
        Assert.Equal(id, config.RootElement.GetProperty("id").GetString());
        Assert.Equal("counter", config.RootElement.GetProperty("name").GetString());
        Assert.Equal(handler, config.RootElement.GetProperty("runtime").GetString());
        Assert.Equal(Busybox, config.RootElement.GetProperty("rootfsImageName").GetString());
        using var spec = JsonDocument.Parse(contents["spec.dump"]);
        var annotations = spec.RootElement.GetProperty("annotations");
        Assert.Equal("counter", annotations.GetProperty("io.kubernetes.cri.container-name").GetString());
        Assert.Equal($"ckpt-{handler}", annotations.GetProperty("io.kubernetes.cri.sandbox-name").GetString());
        Assert.Equal("crishim-it", annotations.GetProperty("io.kubernetes.pod.namespace").GetString());
        Assert.Contains("/etc/group", JsonSerializer.Deserialize<List<string>>(contents["deleted.files"])!);
        using (var diff = new TarReader(new MemoryStream(contents["rootfs-diff.tar"])))
        {
            var names = new List<string>();
            while (diff.GetNextEntry() is { } entry) names.Add(entry.Name);
            Assert.Contains("etc/added-file", names);
            Assert.Contains("tmp/count", names);
            Assert.DoesNotContain(names, n => n.StartsWith("proc/") || n.StartsWith("dev/") || n == "etc/hosts");
        }

        await AssertRunningAndCountingAsync(daemon, id);
        Assert.Empty(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public async Task ATimeoutStopsTheDumpResumesTheContainerAndLeavesNothing()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartCounterAsync(daemon, "runc", 1024, "ckpt-timeout");
        string dir = KubeletCheckpointDir();
        string location = KubeletLocation(dir, "ckpt-timeout");

        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointContainerAsync(
            new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 1 }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        Console.WriteLine($"timeout 1 s with 1 GiB dirtied: DEADLINE_EXCEEDED after {clock.Elapsed.TotalSeconds:0.000} s ({e.Status.Detail})");
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Contains("timed out while", e.Status.Detail);

        // CRIU is let finish the dump it is in (killing it mid-dump can kill the container); then the
        // container is thawed and the work dir removed.
        await Cri.WaitUntilAsync(() => Task.FromResult(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "checkpoints")).Length == 0),
            TimeSpan.FromMinutes(2), "the abandoned dump to be cleaned up");
        Console.WriteLine($"clean-up done {clock.Elapsed.TotalSeconds:0.000} s after the call started");
        await AssertRunningAndCountingAsync(daemon, id);
        Assert.False(File.Exists(location));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Assert.Empty(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        // The container can still be checkpointed afterwards.
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 300 });
        Assert.True(File.Exists(location));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public async Task ErrorsComeBackWithTheRightCodes()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("ckpt-errors");
        string podId = await daemon.RunPodAsync(podConfig);
        string running = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("running", Busybox, "sleep", "3600"));
        string exited = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("exited", Busybox, "true"));
        await daemon.WaitForExitAsync(exited);
        string dir = KubeletCheckpointDir();

        async Task<RpcException> Fails(string containerId, string location) => await Assert.ThrowsAsync<RpcException>(() =>
            daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = containerId, Location = location }).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, (await Fails("no-such-container", Path.Combine(dir, "a.tar"))).StatusCode);
        Assert.Equal(StatusCode.FailedPrecondition, (await Fails(exited, Path.Combine(dir, "b.tar"))).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(running, "")).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(running, "relative/x.tar")).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(running, dir)).StatusCode);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(running)).State);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public async Task DisabledCheckpointingAnswersUnimplementedWithTheTextTheKubeletSkipsOn()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[checkpoint]\nenabled = false\n");
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointContainerAsync(
            new CheckpointContainerRequest { ContainerId = "any", Location = "/tmp/x.tar" }).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.StartsWith("method CheckpointContainer not implemented", e.Status.Detail);
        Assert.Contains("checkpoint.enabled = false", e.Status.Detail);
    }

    [Fact]
    public async Task AHandlerBuiltWithoutCriuAnswersUnimplementedSayingSo()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[runtime.handlers.crun]\npath = \"/usr/bin/crun\"\n");
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("ckpt-nocriu");
        string podId = await daemon.RunPodAsync(podConfig, "crun");
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("c", Busybox, "sleep", "3600"));
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CheckpointContainerAsync(
            new CheckpointContainerRequest { ContainerId = id, Location = "/tmp/never-written.tar" }).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
        Assert.StartsWith("method CheckpointContainer not implemented", e.Status.Detail);
        Assert.Contains("without CRIU support", e.Status.Detail);
        Assert.False(File.Exists("/tmp/never-written.tar"));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task CrictlCheckpointExportsAnArchive()
    {
        const string crictl = "/usr/local/bin/crictl";
        if (!File.Exists(crictl))
        {
            Console.WriteLine("crictl is not installed; skipping the crictl part");
            return;
        }
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartCounterAsync(daemon, "runc", 8, "ckpt-crictl");
        string dir = KubeletCheckpointDir();
        string location = Path.Combine(dir, "x.tar");
        var run = Process.Start(new ProcessStartInfo(crictl, ["--runtime-endpoint", $"unix://{daemon.SocketPath}", "--timeout", "300s", "checkpoint", $"--export={location}", id])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        string output = await run.StandardOutput.ReadToEndAsync() + await run.StandardError.ReadToEndAsync();
        await run.WaitForExitAsync();
        Assert.True(run.ExitCode == 0, output);
        Assert.True(File.Exists(location));
        await AssertRunningAndCountingAsync(daemon, id);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }

    [Fact]
    public async Task ADaemonKilledMidCheckpointLeavesTheContainerRunningAndNothingBehind()
    {
        var dirs = DaemonDirs.Create();
        string dir = KubeletCheckpointDir();
        string location = KubeletLocation(dir, "ckpt-crash");
        string podId, id;
        await using (var first = await Daemon.StartAsync(dirs, Config))
        {
            (podId, id) = await StartCounterAsync(first, "runc", 1024, "ckpt-crash");
            var call = first.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 300 });
            await Task.Delay(TimeSpan.FromSeconds(1));
            await first.KillAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => call.ResponseAsync);
        }
        await using (var second = await Daemon.StartAsync(dirs, Config))
        {
            // The recovery runs once the socket serves: the container is thawed when its work dir is gone.
            await Cri.WaitUntilAsync(() => Task.FromResult(Directory.GetDirectories(Path.Combine(dirs.Root, "checkpoints")).Length == 0),
                TimeSpan.FromMinutes(2), "the interrupted checkpoint to be undone");
            await AssertRunningAndCountingAsync(second, id);
            Assert.False(File.Exists(location));
            Assert.Empty(Directory.GetFileSystemEntries(dir));
            Assert.Empty(Directory.GetDirectories(Path.Combine(dirs.Root, "checkpoints")));
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        dirs.Delete();
        Directory.Delete(Path.GetDirectoryName(dir)!, true);
    }
}
