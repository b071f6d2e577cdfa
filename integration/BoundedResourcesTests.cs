using System.Diagnostics;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>What a container, a client or a registry can make the daemon hold is capped.</summary>
[Collection(RegistryCollection.Name)]
public class BoundedResourcesTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private const int ExecSyncOutputLimit = 16 * 1024 * 1024;
    private const long RssAllowance = 64L * 1024 * 1024;

    private static long ResidentBytes(Daemon daemon)
    {
        string line = File.ReadLines($"/proc/{daemon.ProcessId}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    private async Task<(Daemon Daemon, string PodId, string ContainerId)> StartSleeperAsync(string name)
    {
        var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("c", Busybox, "sleep", "3600"));
        // Warms the exec path up, so the baseline is a daemon that has served an ExecSync.
        await daemon.ShAsync(id, "true");
        return (daemon, podId, id);
    }

    /// <summary>
    /// ASP.NET would watch the daemon's working directory (here its base dir, holding its state; / under an init
    /// system) recursively for appsettings changes: an inotify watch per directory, growing with every pod.
    /// </summary>
    [Fact]
    public async Task TheDaemonWatchesNoDirectoryTreeForConfigurationChanges()
    {
        var (daemon, _, _) = await StartSleeperAsync("no-config-watch");
        await using var _ = daemon;
        Assert.Equal(daemon.Dirs.Base, Path.GetFullPath(new DirectoryInfo($"/proc/{daemon.ProcessId}/cwd").LinkTarget!));
        int watches = 0;
        foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{daemon.ProcessId}/fd"))
        {
            if (new FileInfo(fd).LinkTarget != "anon_inode:inotify") continue;
            watches += File.ReadLines($"/proc/{daemon.ProcessId}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify ", StringComparison.Ordinal));
        }
        // The state dirs alone hold dozens of directories once a container runs; what stays is a watch or two of the runtime's own.
        Assert.InRange(watches, 0, 4);
    }

    [Fact]
    public async Task ExecSyncOfAnEndlessProducerAnswersAtItsTimeoutWithBoundedMemory()
    {
        var (daemon, podId, id) = await StartSleeperAsync("exec-endless");
        await using var _ = daemon;
        long before = ResidentBytes(daemon);
        var request = new ExecSyncRequest { ContainerId = id, Timeout = 6, Cmd = { "yes", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" } };
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.ExecSyncAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        // The timeout, plus the grace OciRuntime gives runc to reap, plus slack for a busy machine.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(6 + 5 + 10), $"answered after {watch.Elapsed}");
        long after = ResidentBytes(daemon);
        Assert.True(after - before < RssAllowance, $"daemon RSS grew from {before >> 20} MiB to {after >> 20} MiB");
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ExecSyncKeepsTheFirst16MiBOfOutput()
    {
        var (daemon, podId, id) = await StartSleeperAsync("exec-40mib");
        await using var _ = daemon;
        long before = ResidentBytes(daemon);
        var result = await daemon.ExecAsync(id, "sh", "-c", $"yes out | head -c {40 * 1024 * 1024}; echo done >&2; exit 7");
        Assert.Equal(7, result.ExitCode);
        Assert.Equal(ExecSyncOutputLimit, result.Stdout.Length);
        Assert.Equal("out\nout\n", System.Text.Encoding.ASCII.GetString(result.Stdout.Span[..8]));
        Assert.Equal("done\n", result.Stderr.ToStringUtf8());
        long after = ResidentBytes(daemon);
        Assert.True(after - before < RssAllowance, $"daemon RSS grew from {before >> 20} MiB to {after >> 20} MiB");
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ExecSyncReturnsBytesThatAreNotUtf8Unchanged()
    {
        var (daemon, podId, id) = await StartSleeperAsync("exec-binary");
        await using var _ = daemon;
        var result = await daemon.ExecAsync(id, "sh", "-c", @"printf '\377\376\000a'; printf '\300' >&2");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(new byte[] { 0xff, 0xfe, 0x00, (byte)'a' }, result.Stdout.ToByteArray());
        Assert.Equal(new byte[] { 0xc0 }, result.Stderr.ToByteArray());
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task AnEndlessManifestIsRefusedAsTooLargeWithBoundedMemory()
    {
        await using var daemon = await Daemon.StartAsync();
        using var endless = FaultyRegistry.Start();
        endless.EndlessManifests = true;
        await daemon.PullAsync(Busybox);
        long before = ResidentBytes(daemon);
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = endless.Reference("huge:1") } }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("manifest 1 of", e.Status.Detail);
        Assert.Contains("is larger than", e.Status.Detail);
        long after = ResidentBytes(daemon);
        Assert.True(after - before < RssAllowance, $"daemon RSS grew from {before >> 20} MiB to {after >> 20} MiB");
    }
}
