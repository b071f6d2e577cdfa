using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Exec;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>
/// The checkpoint sequence over the fake runtime: freeze, dump, rootfs diff, thaw, then the archive;
/// whatever fails or runs out of time, every container is thawed and every lock released.
/// </summary>
public sealed class CheckpointSequenceTests : IDisposable
{
    private readonly ServiceHarness _services = new();
    private readonly ContainerCheckpoint _checkpoint;
    private readonly PodCheckpoint _podCheckpoint;

    public CheckpointSequenceTests()
    {
        // A stand-in CRIU that passes the probe: the fake runtime does the dumping.
        string criu = Path.Combine(_services.Scratch, "criu");
        File.WriteAllText(criu, "#!/bin/sh\ncase \"$1\" in --version) echo 'Version: 3.19';; check) echo 'Looks good.';; esac\n");
        File.SetUnixFileMode(criu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _services.Config.Checkpoint.Criu = criu;
        var probe = new ComponentProbe(_services.Config.Checkpoint, _services.Handlers, NullLogger<ComponentProbe>.Instance);
        probe.RunAsync(CancellationToken.None).GetAwaiter().GetResult();
        var pipeline = new CheckpointPipeline(_services.Config.Checkpoint, _services.Config.State, _services.Paths, probe, _services.Locks, _services.Exits, _services.Handlers,
            _services.Rootfs, NullLogger<CheckpointPipeline>.Instance);
        var retention = new CheckpointRetention(_services.Config.Checkpoint, _services.Pods, NullLogger<CheckpointRetention>.Instance);
        _checkpoint = new ContainerCheckpoint(_services.Config.Checkpoint, _services.Lookup, pipeline, retention, NullLogger<ContainerCheckpoint>.Instance);
        _podCheckpoint = new PodCheckpoint(_services.Config.Checkpoint, _services.Pods, _services.Lookup, pipeline, NullLogger<PodCheckpoint>.Instance);
    }

    public void Dispose() => _services.Dispose();

    private string Archive => Path.Combine(_services.Scratch, "c1.tar");

    private IEnumerable<string> RuntimeAndRootfsCalls => _services.Log.Calls.Where(c => !c.StartsWith("runtime.start", StringComparison.Ordinal));

    private void AssertNothingLeftBehind()
    {
        Assert.False(File.Exists(Archive));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(_services.Scratch), f => Path.GetFileName(f) != "criu" && !Directory.Exists(f));
        Assert.True(!Directory.Exists(_services.Paths.Checkpoints) || !Directory.EnumerateFileSystemEntries(_services.Paths.Checkpoints).Any());
    }

    [Fact]
    public async Task FreezesDumpsCapturesTheDiffThawsAndThenWritesTheArchive()
    {
        await _services.RunningContainerAsync("c1");

        var result = await _checkpoint.CheckpointAsync("c1", Archive, 0, DateTime.MaxValue, CancellationToken.None);

        Assert.Equal(["runtime.pause c1", "runtime.checkpoint c1", "rootfs.changes c1", "runtime.resume c1"], RuntimeAndRootfsCalls);
        Assert.True(File.Exists(Archive));
        Assert.InRange(result.Bytes, 1, new FileInfo(Archive).Length);
        Assert.InRange(result.Frozen, TimeSpan.Zero, result.Total);
        await _services.AssertUnlockedAsync("c1");
    }

    [Fact]
    public async Task AFailedDumpThawsReleasesTheLockAndLeavesNoArchive()
    {
        await _services.RunningContainerAsync("c1");
        _services.Runtime.Step = (call, _) => call == "runtime.checkpoint c1"
            ? throw new ExternalCommandException("fake", ["checkpoint"], 1, "criu failed")
            : Task.CompletedTask;

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => _checkpoint.CheckpointAsync("c1", Archive, 0, DateTime.MaxValue, CancellationToken.None));

        Assert.Contains("criu failed", e.Message);
        Assert.Equal(["runtime.pause c1", "runtime.checkpoint c1", "runtime.resume c1"], RuntimeAndRootfsCalls);
        AssertNothingLeftBehind();
        await _services.AssertUnlockedAsync("c1");
    }

    [Fact]
    public async Task AFailedFreezeIsUndoneToo()
    {
        await _services.RunningContainerAsync("c1");
        _services.Runtime.Step = (call, _) => call == "runtime.pause c1" ? throw new InvalidOperationException("freezer broke") : Task.CompletedTask;

        await Assert.ThrowsAsync<InvalidOperationException>(() => _checkpoint.CheckpointAsync("c1", Archive, 0, DateTime.MaxValue, CancellationToken.None));

        Assert.Equal(["runtime.pause c1", "runtime.resume c1"], RuntimeAndRootfsCalls);
        AssertNothingLeftBehind();
        await _services.AssertUnlockedAsync("c1");
    }

    [Fact]
    public async Task ADumpPastTheTimeoutAnswersAtOnceAndThawsAndUnlocksWhenTheDumpEnds()
    {
        await _services.RunningContainerAsync("c1");
        var dumpMayEnd = new TaskCompletionSource();
        // CRIU is never killed mid-dump: the fake dump ends only when the test lets it.
        _services.Runtime.Step = (call, _) => call == "runtime.checkpoint c1" ? dumpMayEnd.Task : Task.CompletedTask;

        var e = await Assert.ThrowsAsync<CheckpointTimeoutException>(() => _checkpoint.CheckpointAsync("c1", Archive, 1, DateTime.MaxValue, CancellationToken.None));

        Assert.Contains("dumping container c1", e.Phase);
        Assert.DoesNotContain("runtime.resume c1", _services.Log.Calls);
        dumpMayEnd.SetResult();
        await _services.AssertUnlockedAsync("c1");
        Assert.Equal("runtime.resume c1", _services.Log.Calls[^1]);
        AssertNothingLeftBehind();
    }

    /// <summary>A ready pod with running containers c1 and c2, and a request to checkpoint both into an empty directory.</summary>
    private async Task<CheckpointPodRequest> PodWithTwoRunningContainersAsync()
    {
        var pod = _services.ReadyPod();
        await _services.RunningContainerAsync("c1");
        await _services.RunningContainerAsync("c2");
        string output = Directory.CreateDirectory(Path.Combine(_services.Scratch, "pod")).FullName;
        return new CheckpointPodRequest { PodSandboxId = pod.Id, OutputPath = output, ContainerIds = { "c1", "c2" } };
    }

    [Fact]
    public async Task APodIsOneCutEveryContainerFrozenBeforeAnyIsDumpedAndAllThawedAfterTheLast()
    {
        var request = await PodWithTwoRunningContainersAsync();

        var results = await _podCheckpoint.CheckpointAsync(request, DateTime.MaxValue, CancellationToken.None);

        Assert.Equal(["runtime.pause c1", "runtime.pause c2", "runtime.checkpoint c1", "rootfs.changes c1", "runtime.checkpoint c2", "rootfs.changes c2",
            "runtime.resume c1", "runtime.resume c2"], RuntimeAndRootfsCalls);
        Assert.Equal(["c1.tar", "c2.tar", PodCheckpoint.ManifestName], Directory.EnumerateFiles(request.OutputPath).Select(Path.GetFileName).Order());
        Assert.Equal(2, results.Count);
        await _services.AssertUnlockedAsync("c1");
        await _services.AssertUnlockedAsync("c2");
    }

    [Fact]
    public async Task APodWhoseSecondDumpFailsThawsEveryContainerAndLeavesItsDirectoryEmpty()
    {
        var request = await PodWithTwoRunningContainersAsync();
        _services.Runtime.Step = (call, _) => call == "runtime.checkpoint c2"
            ? throw new ExternalCommandException("fake", ["checkpoint"], 1, "criu failed")
            : Task.CompletedTask;

        await Assert.ThrowsAsync<InvalidOperationException>(() => _podCheckpoint.CheckpointAsync(request, DateTime.MaxValue, CancellationToken.None));

        Assert.Contains("runtime.resume c1", _services.Log.Calls);
        Assert.Contains("runtime.resume c2", _services.Log.Calls);
        Assert.Empty(Directory.EnumerateFileSystemEntries(request.OutputPath));
        await _services.AssertUnlockedAsync("c1");
        await _services.AssertUnlockedAsync("c2");
    }

    /// <summary>pod1's container c1's kubelet-named archive, as checkpoint retention counts them.</summary>
    private string KubeletArchive(string time) =>
        Path.Combine(_services.Scratch, CheckpointRetention.ArchivePrefix("pod1", "default", "c1") + time + ".tar");

    [Fact]
    public async Task RetentionUsesTheRecordTheCheckpointResolvedSoARemovalRightAfterStillAnswersAndPrunes()
    {
        _services.Config.Checkpoint.KeepPerContainer = 1;
        _services.ReadyPod("pod1");
        await _services.RunningContainerAsync("c1");
        string older = KubeletArchive("2026-01-01T00:00:00Z"), archive = KubeletArchive("2026-01-02T00:00:00Z");
        File.WriteAllText(older, "");
        // RemoveContainer finishing between the archive and the retention: the record is gone by then.
        _services.Runtime.Step = (call, _) =>
        {
            if (call == "runtime.resume c1") _services.ContainerRecords.Delete("c1");
            return Task.CompletedTask;
        };

        await _checkpoint.CheckpointAsync("c1", archive, 0, DateTime.MaxValue, CancellationToken.None);

        Assert.True(File.Exists(archive));
        Assert.False(File.Exists(older), "retention kept the older archive beyond keep_per_container = 1");
    }

    [Fact]
    public async Task ARetentionThatCannotRunIsLoggedAndTheCheckpointStillSucceeds()
    {
        _services.Config.Checkpoint.KeepPerContainer = 1;
        await _services.RunningContainerAsync("c1"); // its pod pod1 is gone: no name to match archives by
        string older = KubeletArchive("2026-01-01T00:00:00Z"), archive = KubeletArchive("2026-01-02T00:00:00Z");
        File.WriteAllText(older, "");

        await _checkpoint.CheckpointAsync("c1", archive, 0, DateTime.MaxValue, CancellationToken.None);

        Assert.True(File.Exists(archive));
        Assert.True(File.Exists(older));
        await _services.AssertUnlockedAsync("c1");
    }
}
