using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>CreateContainer from a checkpoint archive on the host, then StartContainer: the processes continue with their memory.</summary>
[Collection(RegistryCollection.Name)]
public class RestoreTests(RegistryFixture registry)
{
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CheckpointTests.CriuCapableCrun}\"\n";
    private const string Seed = "0123456789abcdef";
    private const int Doublings = 22; // 16 bytes doubled 22 times: 64 MiB

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>
    /// A shell holding a 64 MiB pattern in a variable (process memory, not a file) and a counter in another,
    /// printing the counter to its log every 0.2 s and the pattern's md5 to /tmp/sum.out when /tmp/sum appears.
    /// </summary>
    private static readonly string CounterScript =
        $"x={Seed}; n=0; while [ $n -lt {Doublings} ]; do x=\"$x$x\"; n=$((n+1)); done; echo ready; i=0; " +
        "while true; do i=$((i+1)); echo \"count $i\"; " +
        "if [ -f /tmp/sum ]; then rm /tmp/sum; printf %s \"$x\" | md5sum > /tmp/sum.part; mv /tmp/sum.part /tmp/sum.out; fi; sleep 0.2; done";

    private static string ExpectedPatternMd5()
    {
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        byte[] seed = Encoding.ASCII.GetBytes(Seed);
        for (int i = 0; i < 1 << Doublings; i++) md5.AppendData(seed);
        return Convert.ToHexStringLower(md5.GetHashAndReset());
    }


    private static async Task<string> PatternMd5Async(Daemon daemon, string id)
    {
        await daemon.ShAsync(id, "rm -f /tmp/sum.out; touch /tmp/sum");
        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "test", "-f", "/tmp/sum.out")).ExitCode == 0,
            TimeSpan.FromSeconds(60), "the pattern's checksum");
        return (await daemon.ShAsync(id, "cat /tmp/sum.out")).Split(' ')[0];
    }

    private static Runtime.V1.ContainerConfig CounterConfig(string image, string dataDir)
    {
        var config = Cri.Container("counter", image, "sh", "-c", CounterScript);
        config.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = dataDir });
        return config;
    }

    private static string ArchiveDir() => Directory.CreateTempSubdirectory("crishim-restore-").FullName;

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ARestoredContainerContinuesItsCounterMemoryFilesAndLogInANewPod(string handler)
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        string dir = ArchiveDir();
        string dataDir = Directory.CreateDirectory(Path.Combine(dir, "data")).FullName;
        string location = Path.Combine(dir, "counter.tar");
        string expectedMd5 = ExpectedPatternMd5();

        var firstPod = Cri.Pod($"restore-from-{handler}");
        string firstPodId = await daemon.RunPodAsync(firstPod, handler);
        string original = await daemon.StartContainerAsync(firstPodId, firstPod, CounterConfig(Busybox, dataDir));
        string originalLog = (await daemon.StatusAsync(original)).LogPath;
        await Cri.WaitUntilAsync(() => Task.FromResult(CounterLog.Counts(CounterLog.ReadShared(originalLog)).Count > 0), TimeSpan.FromMinutes(2), "the counter to start");
        Assert.Equal(expectedMd5, await PatternMd5Async(daemon, original));
        await daemon.ShAsync(original, "rm /tmp/sum.out; echo kept > /root/written; rm /etc/group; echo on-host > /data/file");
        long beforeCheckpoint = CounterLog.Counts(CounterLog.ReadShared(originalLog)).Last();

        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = location, Timeout = 120 });
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = firstPodId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = firstPodId });

        var secondPod = Cri.Pod($"restore-into-{handler}");
        string secondPodId = await daemon.RunPodAsync(secondPod, handler);
        var created = await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = secondPodId, Config = CounterConfig(location, dataDir), SandboxConfig = secondPod,
        });
        string id = created.ContainerId;
        var status = await daemon.StatusAsync(id);
        Assert.Equal(ContainerState.ContainerCreated, status.State);
        Assert.Equal("true", status.Annotations["io.crishim.restored"]);
        Assert.Equal(location, status.Annotations["io.crishim.restored-from"]);
        Assert.Equal(Busybox, status.Image.Image);
        int restoredLogLength = CounterLog.ReadShared(status.LogPath).Length;
        var checkpointedCounts = CounterLog.Counts(CounterLog.ReadShared(status.LogPath));
        Assert.Contains(beforeCheckpoint, checkpointedCounts);

        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });

        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        // Its CRIU images went once the restore succeeded; the checkpoint of it below does without them.
        Assert.False(Directory.Exists(Path.Combine(daemon.Dirs.Root, "containers", id, "checkpoint")), "the CRIU images outlived the restore");
        await Cri.WaitUntilAsync(() => Task.FromResult(CounterLog.Counts(CounterLog.ReadShared(status.LogPath)[restoredLogLength..]).Count >= 3),
            TimeSpan.FromSeconds(30), "the restored counter to print");
        var continued = CounterLog.Counts(CounterLog.ReadShared(status.LogPath)[restoredLogLength..]);
        Console.WriteLine($"{handler}: {beforeCheckpoint} before the checkpoint, {checkpointedCounts.Last()} in the archive's log, then {string.Join(' ', continued.Take(5))}");
        Assert.True(continued[0] > beforeCheckpoint, $"the counter restarted at {continued[0]}, it was {beforeCheckpoint} before the checkpoint");
        Assert.True(continued[0] <= checkpointedCounts.Last() + 1, $"the counter jumped to {continued[0]} past the archive's {checkpointedCounts.Last()}");
        Assert.Equal(Enumerable.Range(0, 3).Select(i => continued[0] + i), continued.Take(3));
        Assert.Equal(expectedMd5, await PatternMd5Async(daemon, id));
        Assert.Equal("kept", await daemon.ShAsync(id, "cat /root/written"));
        Assert.Equal(1, (await daemon.ExecAsync(id, "test", "-e", "/etc/group")).ExitCode);
        Assert.Equal("on-host", await daemon.ShAsync(id, "cat /data/file"));
        foreach (string line in daemon.Output.Split('\n').Where(l => l.Contains($"container {id} from checkpoint archive") || l.Contains($"restored container {id}")))
        {
            Console.WriteLine($"{handler}: {line.Trim()}");
        }
        Assert.Contains($"restored container {id}", daemon.Output);

        // A checkpoint of the restored container says so, as checkpointctl reads it.
        string again = Path.Combine(dir, "again.tar");
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = again, Timeout = 120 });
        Assert.True(ReadJsonEntry(again, "config.dump").GetProperty("restored").GetBoolean());

        // From here it is a container like any other.
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 1 });
        Assert.Equal(ContainerState.ContainerExited, (await daemon.StatusAsync(id)).State);
        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = secondPodId });
        Assert.Empty(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        Directory.Delete(dir, true);
    }

    /// <summary>A tar of the given entries (name, content) plus <paramref name="extra"/> written raw.</summary>
    private static string WriteArchive(string path, IEnumerable<TarEntry> entries)
    {
        using var stream = File.Create(path);
        using var tar = new TarWriter(stream, TarEntryFormat.Pax);
        foreach (var entry in entries) tar.WriteEntry(entry);
        return path;
    }

    private static PaxTarEntry FileEntry(string name, string content) =>
        new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)) };

    private string ConfigDump(string image) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["id"] = "0123abcd", ["name"] = "counter", ["rootfsImage"] = "", ["rootfsImageRef"] = "", ["rootfsImageName"] = image,
        ["runtime"] = "runc", ["createdTime"] = "2026-01-01T00:00:00Z", ["checkpointedTime"] = "2026-01-01T00:00:00Z", ["restored"] = false,
    });

    private static string SpecDump(params string[] bindDestinations) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["process"] = new Dictionary<string, object> { ["args"] = new[] { "sleep", "3600" }, ["env"] = new[] { "PATH=/bin" }, ["cwd"] = "/" },
        ["mounts"] = bindDestinations.Select(d => new Dictionary<string, object> { ["destination"] = d, ["type"] = "bind", ["source"] = "/nowhere", ["options"] = new[] { "rbind" } })
            .Append(new Dictionary<string, object> { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" }).ToArray(),
        // As a container of a pod's network dumps it (a restore checks the network and pid modes).
        ["linux"] = new Dictionary<string, object>
        {
            ["namespaces"] = new[] { new Dictionary<string, string> { ["type"] = "network", ["path"] = "/var/run/netns/checkpointed" }, new() { ["type"] = "pid" } },
        },
    });

    /// <summary>The parts every checkpoint has: CRIU's image dir (empty here: CRIU would find nothing to restore) and both dumps.</summary>
    private List<TarEntry> Minimal(params string[] bindDestinations) =>
        [new PaxTarEntry(TarEntryType.Directory, "checkpoint/"), FileEntry("config.dump", ConfigDump(Busybox)), FileEntry("spec.dump", SpecDump(bindDestinations))];

    /// <summary>A ustar header claiming <paramref name="size"/> bytes of data, and the file made sparse to that length.</summary>
    private static void AppendClaimedEntry(string path, string name, long size)
    {
        // Drop the two zero blocks that end the archive, then write the header by hand.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.SetLength(stream.Length - 1024);
        stream.Seek(0, SeekOrigin.End);
        var header = new byte[512];
        void Put(int at, string text) => Encoding.ASCII.GetBytes(text).CopyTo(header, at);
        Put(0, name);
        Put(100, "0000644\0");
        Put(108, "0000000\0");
        Put(116, "0000000\0");
        Put(124, Convert.ToString(size, 8).PadLeft(11, '0') + "\0");
        Put(136, "00000000000\0");
        Put(148, "        ");
        header[156] = (byte)'0';
        Put(257, "ustar\0");
        Put(263, "00");
        Put(148, Convert.ToString(header.Sum(b => b), 8).PadLeft(6, '0') + "\0 ");
        stream.Write(header);
        stream.SetLength(stream.Position + size + 1024);
    }

    [Fact]
    public async Task HostileOrWrongArchivesAreRefusedBeforeAnythingIsCreated()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        var pod = Cri.Pod("restore-hostile");
        string podId = await daemon.RunPodAsync(pod);
        string dir = ArchiveDir();
        string inner = Directory.CreateDirectory(Path.Combine(dir, "inner")).FullName;
        string escaped = $"escaped-{Guid.NewGuid():N}";

        async Task<RpcException> Refused(string archive) => await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(
            new CreateContainerRequest { PodSandboxId = podId, Config = Cri.Container("counter", archive, "sh"), SandboxConfig = pod }).ResponseAsync);

        var climbing = Minimal().Append(FileEntry($"../../../{escaped}", "out"));
        var symlinkOut = Minimal().Append(new PaxTarEntry(TarEntryType.SymbolicLink, "checkpoint/link") { LinkName = "/" })
            .Append(FileEntry($"checkpoint/link/tmp/{escaped}", "out"));
        var device = Minimal().Append(new PaxTarEntry(TarEntryType.CharacterDevice, "checkpoint/mem") { DeviceMajor = 1, DeviceMinor = 1 });
        var deviceInDiff = new MemoryStream();
        using (var diff = new TarWriter(deviceInDiff, TarEntryFormat.Pax, leaveOpen: true))
        {
            diff.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "dev/mem") { DeviceMajor = 1, DeviceMinor = 1 });
        }
        deviceInDiff.Position = 0;
        var diffWithDevice = Minimal().Append(new PaxTarEntry(TarEntryType.RegularFile, "rootfs-diff.tar") { DataStream = deviceInDiff });
        var malformed = new List<TarEntry> { new PaxTarEntry(TarEntryType.Directory, "checkpoint/"), FileEntry("config.dump", "{\"id\": "), FileEntry("spec.dump", SpecDump()) };
        var notCheckpoint = new List<TarEntry> { FileEntry("hello.txt", "hello") };
        string huge = WriteArchive(Path.Combine(inner, "huge.tar"), [new PaxTarEntry(TarEntryType.Directory, "checkpoint/"), FileEntry("spec.dump", SpecDump())]);
        AppendClaimedEntry(huge, "config.dump", 2L << 30);

        foreach (var (what, archive) in new[]
        {
            ("a ../ entry", WriteArchive(Path.Combine(inner, "climbing.tar"), climbing)),
            ("a symlink out", WriteArchive(Path.Combine(inner, "symlink.tar"), symlinkOut)),
            ("a device node", WriteArchive(Path.Combine(inner, "device.tar"), device)),
            ("a device node in rootfs-diff.tar", WriteArchive(Path.Combine(inner, "diff-device.tar"), diffWithDevice)),
            ("a 2 GiB config.dump", huge),
            ("malformed config.dump", WriteArchive(Path.Combine(inner, "malformed.tar"), malformed)),
            ("no checkpoint at all", WriteArchive(Path.Combine(inner, "not.tar"), notCheckpoint)),
            ("a directory", inner),
        })
        {
            var e = await Refused(archive);
            Console.WriteLine($"{what}: {e.StatusCode} {e.Status.Detail}");
            Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{what}: {e.StatusCode} {e.Status.Detail}");
        }
        Assert.Equal(StatusCode.NotFound, (await Refused(Path.Combine(dir, "missing.tar"))).StatusCode);

        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        Assert.Empty(Directory.GetFiles(daemon.Dirs.Base, escaped, SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(dir, escaped, SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine("/tmp", escaped)));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    /// <summary>The target pod is checked before the archive is read: an archive that is no tar does not decide the answer.</summary>
    [Fact]
    public async Task AnUnknownOrStoppedPodIsRefusedBeforeTheArchiveIsRead()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        string dir = ArchiveDir();
        string notATar = Path.Combine(dir, "not.tar");
        File.WriteAllText(notATar, "not a tar");
        var pod = Cri.Pod("restore-into-stopped");
        string podId = await daemon.RunPodAsync(pod);
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });

        foreach (var (target, expected) in new[] { ("0123456789abcdef", StatusCode.NotFound), (podId, StatusCode.FailedPrecondition) })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = target, Config = Cri.Container("counter", notATar, "sh"), SandboxConfig = pod,
            }).ResponseAsync);
            Console.WriteLine($"restore into {target}: {e.StatusCode} {e.Status.Detail}");
            Assert.Equal(expected, e.StatusCode);
            Assert.Contains("pod sandbox", e.Status.Detail);
        }
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task AMissingBindMountIsAFailedPreconditionAndACriuFailureRemovesTheContainer()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        var pod = Cri.Pod("restore-errors");
        string podId = await daemon.RunPodAsync(pod);
        string dir = ArchiveDir();

        string withMount = WriteArchive(Path.Combine(dir, "with-mount.tar"), Minimal("/data", "/etc/hosts"));
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("counter", withMount, "sh"), SandboxConfig = pod,
        }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("/data", e.Status.Detail);
        Assert.DoesNotContain("/etc/hosts", e.Status.Detail);
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);

        // Valid to the daemon, but its CRIU image dir is empty: CRIU fails and the container goes.
        string empty = WriteArchive(Path.Combine(dir, "empty.tar"), Minimal());
        var toRestore = Cri.Container("counter", empty, "sh");

        // A restored container that is never started stops and goes like any created one.
        string unstarted = (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = toRestore, SandboxConfig = pod,
        })).ContainerId;
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = unstarted, Timeout = 1 });
        Assert.Equal(ContainerState.ContainerExited, (await daemon.StatusAsync(unstarted)).State);
        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = unstarted });
        Assert.False(Directory.Exists(Path.Combine(daemon.Dirs.Root, "containers", unstarted)));

        string id = (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = toRestore, SandboxConfig = pod,
        })).ContainerId;
        e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }).ResponseAsync);
        Console.WriteLine($"CRIU failure: {e.StatusCode} {e.Status.Detail}");
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("CRIU could not restore", e.Status.Detail);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => daemon.StatusAsync(id))).StatusCode);
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.False(Directory.Exists(Path.Combine(daemon.Dirs.Root, "containers", id)));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
    }

    /// <summary>
    /// A connection from the pod's own IP to itself, checkpointed with tcp_established: CRIU can bring it back only
    /// on that address, so a restore into a pod with another IP is refused before anything is created.
    /// </summary>
    [Fact]
    public async Task EstablishedConnectionsOfAnotherPodIpAreAFailedPreconditionBeforeAnythingIsCreated()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config + "[checkpoint]\ntcp_established = true\n");
        await daemon.PullAsync(Busybox);
        var firstPod = Cri.Pod("restore-tcp-from");
        string firstPodId = await daemon.RunPodAsync(firstPod);
        string firstIp = await PodIpAsync(daemon, firstPodId);
        string original = await daemon.StartContainerAsync(firstPodId, firstPod, Cri.Container("talker", Busybox, "sh", "-c",
            $"sleep 3600 | nc -l -p 9000 > /tmp/received & sleep 0.5; (while true; do echo line; sleep 0.2; done) | nc {firstIp} 9000"));
        await Cri.WaitUntilAsync(async () => (await daemon.ShAsync(original, "netstat -tn")).Contains($"{firstIp}:9000"), TimeSpan.FromSeconds(30),
            "the connection over the pod's IP");
        string dir = ArchiveDir();
        string location = Path.Combine(dir, "talker.tar");
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = location, Timeout = 120 });

        var secondPod = Cri.Pod("restore-tcp-into");
        string secondPodId = await daemon.RunPodAsync(secondPod);
        string secondIp = await PodIpAsync(daemon, secondPodId);
        Assert.NotEqual(firstIp, secondIp);
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = secondPodId, Config = Cri.Container("talker", location, "sh"), SandboxConfig = secondPod,
        }).ResponseAsync);
        Console.WriteLine($"restore into {secondIp}: {e.StatusCode} {e.Status.Detail}");
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains(firstIp, e.Status.Detail);
        Assert.Contains(secondIp, e.Status.Detail);
        Assert.Contains("tcp_established", e.Status.Detail);
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = secondPodId } })).Containers);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = secondPodId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = firstPodId });
        Directory.Delete(dir, true);
    }

    /// <summary>
    /// A connection over the pod's loopback, checkpointed by CheckpointPod with tcp_established on a daemon whose
    /// configuration leaves it off: the restore passes the dump's option (CRIU refuses the connection without it),
    /// so the connection comes back and keeps flowing.
    /// </summary>
    [Fact]
    public async Task ARestoreRepeatsTheDumpsTcpEstablishedNotTheDaemonsConfiguration()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        var firstPod = Cri.Pod("restore-options-from");
        string firstPodId = await daemon.RunPodAsync(firstPod);
        var talker = Cri.Container("talker", Busybox, "sh", "-c",
            "sleep 3600 | nc -l -p 9000 > /tmp/received & sleep 0.5; i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.2; done | nc 127.0.0.1 9000");
        string original = await daemon.StartContainerAsync(firstPodId, firstPod, talker);
        await Cri.WaitUntilAsync(async () => (await daemon.ShAsync(original, "netstat -tn")).Contains("127.0.0.1:9000"), TimeSpan.FromSeconds(30),
            "the connection over the pod's loopback");
        string dir = ArchiveDir();
        var checkpoint = new CheckpointPodRequest { PodSandboxId = firstPodId, OutputPath = dir, Options = { ["tcp_established"] = "true" } };
        checkpoint.ContainerIds.Add(original);
        await daemon.Runtime.CheckpointPodAsync(checkpoint, deadline: DateTime.UtcNow.AddSeconds(120));
        Assert.True(ReadJsonEntry(Path.Combine(dir, "talker.tar"), "crishim.criu-options.json").GetProperty("tcpEstablished").GetBoolean());
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = firstPodId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = firstPodId });

        var restore = new RestorePodRequest { CheckpointPath = dir, Config = Cri.Pod("restore-options-into") };
        restore.ContainerConfigs.Add(talker);
        var restored = await daemon.Runtime.RestorePodAsync(restore, deadline: DateTime.UtcNow.AddSeconds(120));
        string id = restored.RestoredContainers.Single().ContainerId;
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });

        async Task<int> ReceivedAsync() => int.Parse((await daemon.ShAsync(id, "wc -l < /tmp/received")).Trim());
        int atRestore = await ReceivedAsync();
        await Cri.WaitUntilAsync(async () => await ReceivedAsync() >= atRestore + 5, TimeSpan.FromSeconds(30), "lines over the restored connection");
        Console.WriteLine($"{atRestore} lines received before the checkpoint, {await ReceivedAsync()} now");
        Assert.Contains("127.0.0.1:9000", await daemon.ShAsync(id, "netstat -tn"));
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = restored.PodSandboxId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = restored.PodSandboxId });
        Directory.Delete(dir, true);
    }

    /// <summary>
    /// A checkpoint of a container in the pod's network restored into a host-network pod: refused at CreateContainer,
    /// before anything is created, instead of CRIU's "Unable to find an external netns" at StartContainer.
    /// </summary>
    [Fact]
    public async Task APodNetworkCheckpointIntoAHostNetworkPodIsAFailedPreconditionBeforeAnythingIsCreated()
    {
        await using var daemon = await Daemon.StartAsync(configToml: Config);
        await daemon.PullAsync(Busybox);
        var firstPod = Cri.Pod("restore-netns-from");
        string firstPodId = await daemon.RunPodAsync(firstPod);
        string original = await daemon.StartContainerAsync(firstPodId, firstPod, Cri.Container("sleeper", Busybox, "sleep", "3600"));
        string dir = ArchiveDir();
        string location = Path.Combine(dir, "sleeper.tar");
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = location, Timeout = 120 });

        var hostPod = Cri.Pod("restore-netns-into-host");
        hostPod.Linux.SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } };
        string hostPodId = await daemon.RunPodAsync(hostPod);
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = hostPodId, Config = Cri.Container("sleeper", location, "sh"), SandboxConfig = hostPod,
        }).ResponseAsync);
        Console.WriteLine($"restore into a host-network pod: {e.StatusCode} {e.Status.Detail}");
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("a network namespace of its pod or own", e.Status.Detail);
        Assert.Contains("the host's network namespace (NODE)", e.Status.Detail);
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = hostPodId } })).Containers);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.Dirs.Root, "checkpoints")));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = hostPodId });
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = firstPodId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = firstPodId });
        Directory.Delete(dir, true);
    }

    private static async Task<string> PodIpAsync(Daemon daemon, string podId) =>
        (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status.Network.Ip;

    private static JsonElement ReadJsonEntry(string archive, string name)
    {
        using var stream = File.OpenRead(archive);
        using var tar = new TarReader(stream);
        while (tar.GetNextEntry(copyData: true) is { } entry)
        {
            if (entry.Name == name) return JsonDocument.Parse(entry.DataStream!).RootElement.Clone();
        }
        throw new InvalidDataException($"{archive} has no {name}");
    }
}
