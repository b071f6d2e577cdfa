using System.Diagnostics;
using System.Formats.Tar;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// Checkpoints of containers that hold sockets, that keep logging while their archive is written,
/// that have special files in their writable layer, and whose archive does not fit on its disk.
/// </summary>
[Collection(RegistryCollection.Name)]
public class CheckpointHardeningTests(RegistryFixture registry)
{
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CheckpointTests.CriuCapableCrun}\"\n";
    private const string TcpEstablishedConfig = Config + "[checkpoint]\ntcp_established = true\n";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private async Task<(string PodId, string ContainerId)> StartAsync(Daemon daemon, string handler, string name, string script, string readyFile)
    {
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig, handler);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container(name, Busybox, "sh", "-c", script));
        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-e", readyFile)).ExitCode == 0, TimeSpan.FromMinutes(1), readyFile);
        return (podId, id);
    }

    private static async Task CheckpointAsync(Daemon daemon, string id, string location) =>
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 120 },
            deadline: DateTime.UtcNow.AddSeconds(120));

    private static string TempDir(string prefix) => Directory.CreateTempSubdirectory(prefix).FullName;

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task AContainerListeningOnTcpIsCheckpointedAndKeepsServing(string handler)
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartAsync(daemon, handler, $"ckpt-listen-{handler}",
            "echo served > /tmp/page; (sleep 0.5; touch /tmp/ready) & exec httpd -f -p 8080 -h /tmp", "/tmp/ready");
        Assert.Equal("served", await daemon.ShAsync(id, "wget -q -O - http://127.0.0.1:8080/page"));
        string dir = TempDir("crishim-ckpt-listen-");
        string location = Path.Combine(dir, "listen.tar");

        await CheckpointAsync(daemon, id, location);

        Assert.Contains("checkpoint/inventory.img", await ReadEveryEntryAsync(location));
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        Assert.Equal("served", await daemon.ShAsync(id, "wget -q -O - http://127.0.0.1:8080/page"));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    /// <summary>A client in the container sends a line every 100 ms over loopback to a listener in the same container.</summary>
    private const string EstablishedConnectionScript =
        "sleep 3600 | nc -l -p 9000 > /tmp/received & sleep 0.5; " +
        "(i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done) | nc 127.0.0.1 9000";

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task AnEstablishedTcpConnectionIsCheckpointedWithTcpEstablishedAndKeepsFlowing(string handler)
    {
        await using var daemon = await Daemon.StartAsync(configToml: TcpEstablishedConfig);
        var (podId, id) = await StartAsync(daemon, handler, $"ckpt-tcp-{handler}", EstablishedConnectionScript, "/tmp/received");
        await Cri.WaitUntilAsync(async () => (await daemon.ShAsync(id, "netstat -tn")).Contains("ESTABLISHED"), TimeSpan.FromSeconds(30),
            "the connection to be established");
        string dir = TempDir("crishim-ckpt-tcp-");
        string location = Path.Combine(dir, "tcp.tar");

        await CheckpointAsync(daemon, id, location);

        Assert.Contains("checkpoint/inventory.img", await ReadEveryEntryAsync(location));
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        Assert.Contains("ESTABLISHED", await daemon.ShAsync(id, "netstat -tn"));
        // The same connection keeps carrying data after the dump.
        long before = await ReceivedLinesAsync(daemon, id);
        await Cri.WaitUntilAsync(async () => await ReceivedLinesAsync(daemon, id) > before + 3, TimeSpan.FromSeconds(20),
            "lines to keep arriving over the checkpointed connection");
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    private static async Task<long> ReceivedLinesAsync(Daemon daemon, string id) =>
        long.Parse((await daemon.ShAsync(id, "wc -l < /tmp/received")).Trim());

    [Fact]
    public async Task AContinuouslyLoggingContainerAlwaysCheckpointsToAValidTar()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartAsync(daemon, "runc", "ckpt-logging",
            "touch /tmp/ready; i=0; while true; do i=$((i+1)); echo line $i; done", "/tmp/ready");
        string dir = TempDir("crishim-ckpt-logging-");
        try
        {
            for (int round = 1; round <= 5; round++)
            {
                string location = Path.Combine(dir, $"logging-{round}.tar");
                await CheckpointAsync(daemon, id, location);

                var names = await ReadEveryEntryAsync(location);
                foreach (string expected in new[] { "checkpoint/", "checkpoint/inventory.img", "config.dump", "spec.dump", "rootfs-diff.tar", "container.log" })
                {
                    Assert.True(names.Contains(expected), $"round {round}: {expected} missing; archive has {string.Join(", ", names)}");
                }
                var (exitCode, output) = await RunAsync("tar", "-tvf", location);
                Assert.True(exitCode == 0, $"round {round}: tar -tvf exited {exitCode}: {output}");
                Assert.DoesNotContain("Skipping", output);
                Assert.DoesNotContain("lone zero", output);
                Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
            }
        }
        finally
        {
            // The loop keeps a core busy: gone as soon as the archives are checked.
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Directory.Delete(dir, true);
        }
    }

    [FactNeedingTool("checkpointctl")]
    public async Task CheckpointctlReadsTheArchiveOfALoggingContainer()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartAsync(daemon, "runc", "ckpt-checkpointctl",
            "touch /tmp/ready; i=0; while true; do i=$((i+1)); echo line $i; done", "/tmp/ready");
        string dir = TempDir("crishim-ckpt-checkpointctl-");
        try
        {
            string location = Path.Combine(dir, "logging.tar");
            await CheckpointAsync(daemon, id, location);
            var (exitCode, output) = await RunAsync("checkpointctl", "show", location);
            Assert.True(exitCode == 0, $"checkpointctl show exited {exitCode}: {output}");
        }
        finally
        {
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task FifosSocketsAndDeviceNodesInTheWritableLayerAreLeftOutOfTheRootfsDiff()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        var (podId, id) = await StartAsync(daemon, "runc", "ckpt-special",
            "mkfifo /tmp/fifo; mknod /tmp/null c 1 3; echo kept > /tmp/regular; touch /tmp/ready; exec sleep 3600", "/tmp/ready");
        var verbose = await daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = id, Verbose = true });
        int pid = System.Text.Json.JsonDocument.Parse(verbose.Info["info"]).RootElement.GetProperty("pid").GetInt32();
        // busybox has nothing that binds a unix socket at a path of its choosing: bind one from the host through
        // the container's root (kept open to the end: closing it would remove the file).
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint($"/proc/{pid}/root/tmp/app.sock"));
        Assert.Equal("ok", await daemon.ShAsync(id, "test -S /tmp/app.sock && test -p /tmp/fifo && test -c /tmp/null && echo ok"));
        string dir = TempDir("crishim-ckpt-special-");
        string location = Path.Combine(dir, "special.tar");

        await CheckpointAsync(daemon, id, location);

        var diff = new List<string>();
        await using (var stream = File.OpenRead(location))
        {
            using var tar = new TarReader(stream);
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.Name != "rootfs-diff.tar") continue;
                using var inner = new TarReader(entry.DataStream!);
                while (inner.GetNextEntry() is { } file) diff.Add(file.Name);
            }
        }
        Assert.Contains("tmp/regular", diff);
        Assert.DoesNotContain("tmp/fifo", diff);
        Assert.DoesNotContain("tmp/app.sock", diff);
        Assert.DoesNotContain("tmp/null", diff);
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task ADiskThatFillsUpWhileTheArchiveIsWrittenIsResourceExhaustedAndHoldsNothing()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        // About 6 MB of log: the archive cannot fit in 2 MiB, while memory plus writable layer (the free-space estimate) do.
        var (podId, id) = await StartAsync(daemon, "runc", "ckpt-full",
            "head -c 6000000 /dev/zero | tr '\\0' x | fold -w 1000; touch /tmp/ready; exec sleep 3600", "/tmp/ready");
        string dir = TempDir("crishim-ckpt-full-");
        var mount = await RunAsync("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", dir);
        Assert.True(mount.ExitCode == 0, mount.Output);
        try
        {
            ulong usedBefore = UsedBytes(dir);
            var e = await Assert.ThrowsAsync<RpcException>(() => CheckpointAsync(daemon, id, Path.Combine(dir, "full.tar")));

            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Contains("while writing the archive", e.Status.Detail);
            Assert.Empty(Directory.GetFileSystemEntries(dir));
            Assert.Equal(usedBefore, UsedBytes(dir));
            var held = Directory.GetFiles($"/proc/{daemon.ProcessId}/fd")
                .Select(fd => { try { return new FileInfo(fd).LinkTarget ?? ""; } catch (IOException) { return ""; } })
                .Where(target => target.StartsWith(dir + "/", StringComparison.Ordinal)).ToList();
            Assert.True(held.Count == 0, $"the daemon still holds {string.Join(", ", held)}");
            Assert.Empty(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "checkpoints")));
            Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        }
        finally
        {
            await RunAsync("umount", "-l", dir);
            Directory.Delete(dir, true);
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
    }

    [Fact]
    public async Task StatusReportsACriuKnownToFailOnTheRunningKernel()
    {
        // A CRIU that says it is 4.1.1 and passes `criu check`: on Linux >= 6.16 it cannot dump sockets (criu#2705).
        string fake = Path.Combine(TempDir("crishim-fake-criu-"), "criu");
        File.WriteAllText(fake, "#!/bin/sh\ncase \"$1\" in --version) echo 'Version: 4.1.1' ;; check) echo 'Looks good.' ;; esac\n");
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await using var daemon = await Daemon.StartAsync(configToml: $"[checkpoint]\ncriu = \"{fake}\"\n");

        var status = await daemon.Runtime.StatusAsync(new StatusRequest { Verbose = true });

        var kernel = Version.Parse(string.Join('.', File.ReadAllText("/proc/sys/kernel/osrelease").Split('.', '-').Take(2)));
        var condition = Assert.Single(status.Status.Conditions, c => c.Type == "CheckpointReady");
        using var criu = System.Text.Json.JsonDocument.Parse(status.Info["criu"]);
        string knownProblem = criu.RootElement.GetProperty("knownProblem").GetString()!;
        if (kernel < new Version(6, 16))
        {
            Assert.True(condition.Status, condition.Message);
            Assert.Empty(knownProblem);
        }
        else
        {
            Assert.False(condition.Status);
            Assert.Equal("CriuKnownToFailOnThisKernel", condition.Reason);
            Assert.Contains("criu#2705", condition.Message);
            Assert.Equal(condition.Message, knownProblem);
            // The log line and the condition come from the same probe; the daemon's output reaches the harness a little later.
            await Cri.WaitUntilAsync(() => Task.FromResult(daemon.Output.Contains("criu#2705")), TimeSpan.FromSeconds(10), "the log to name criu#2705");
        }
        Directory.Delete(Path.GetDirectoryName(fake)!, true);
    }

    [Fact]
    public async Task StatusSaysTheInstalledCriuCanCheckpoint()
    {
        await using var daemon = await Daemon.StartAsync();
        var condition = Assert.Single((await daemon.Runtime.StatusAsync(new StatusRequest())).Status.Conditions, c => c.Type == "CheckpointReady");
        Assert.True(condition.Status, $"{condition.Reason}: {condition.Message}");
    }

    private static ulong UsedBytes(string path)
    {
        var drive = new DriveInfo(path);
        return (ulong)(drive.TotalSize - drive.TotalFreeSpace);
    }

    /// <summary>Reads every entry of the archive with TarReader, each entry's data to its end; returns the names.</summary>
    private static async Task<List<string>> ReadEveryEntryAsync(string location)
    {
        var names = new List<string>();
        await using var stream = File.OpenRead(location);
        using var tar = new TarReader(stream);
        while (await tar.GetNextEntryAsync() is { } entry)
        {
            names.Add(entry.Name);
            if (entry.DataStream is not { } data) continue;
            long read = 0;
            var buffer = new byte[1 << 16];
            for (int n; (n = await data.ReadAsync(buffer)) > 0;) read += n;
            Assert.Equal(entry.Length, read);
        }
        return names;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, stderr + await stdout);
    }
}
