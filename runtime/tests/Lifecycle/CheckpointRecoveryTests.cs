using System.Text.Json;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Exec;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>
/// Start-up recovery of a checkpoint that a daemon crash interrupted, over the fake runtime: the container is
/// resumed, a failing resume is retried, and one that keeps failing is reported (reason and event), never forgotten.
/// </summary>
public sealed class CheckpointRecoveryTests : IDisposable
{
    private readonly ServiceHarness _services = new();
    private readonly CheckpointRecovery _recovery;

    public CheckpointRecoveryTests() =>
        _recovery = new CheckpointRecovery(_services.Paths, _services.Handlers, _services.Locks, _services.ContainerRecords,
            _services.Events, NullLogger<CheckpointRecovery>.Instance);

    public void Dispose() => _services.Dispose();

    /// <summary>What a crash mid-checkpoint leaves: the work dir with its marker and a temp archive.</summary>
    private (string WorkDir, string TempArchive) InterruptedCheckpointOf(string id)
    {
        string workDir = Directory.CreateDirectory(Path.Combine(_services.Paths.Checkpoints, $"{id}-interrupted")).FullName;
        string tempArchive = Path.Combine(_services.Scratch, $".{id}.tar.tmp");
        File.WriteAllText(tempArchive, "partial");
        var inFlight = new CheckpointInFlight(id, _services.Runtime.Handler, tempArchive, DateTimeOffset.UtcNow.AddSeconds(-1));
        File.WriteAllText(Path.Combine(workDir, CheckpointPipeline.InFlightFile), JsonSerializer.Serialize(inFlight, CheckpointJson.Default.CheckpointInFlight));
        return (workDir, tempArchive);
    }

    /// <summary>Resume fails <paramref name="failures"/> times, then succeeds.</summary>
    private void ResumeFails(int failures)
    {
        int failed = 0;
        _services.Runtime.Step = (call, _) =>
            call.StartsWith("runtime.resume", StringComparison.Ordinal) && failed++ < failures
                ? throw new ExternalCommandException("fake", ["resume"], 1, "container is busy")
                : Task.CompletedTask;
    }

    private async Task RecoverAsync()
    {
        var interrupted = await _recovery.LockInterruptedAsync(CancellationToken.None);
        await _recovery.RecoverAsync(interrupted, CancellationToken.None);
    }

    private int Resumes => _services.Log.Calls.Count(c => c == "runtime.resume c1");

    [Fact]
    public async Task AResumeThatFailsIsRetriedAndTheCheckpointIsCleanedUp()
    {
        await _services.RunningContainerAsync("c1");
        var (workDir, tempArchive) = InterruptedCheckpointOf("c1");
        ResumeFails(2);

        await RecoverAsync();

        Assert.Equal(3, Resumes);
        Assert.False(Directory.Exists(workDir));
        Assert.False(File.Exists(tempArchive));
        Assert.Equal("", _services.Lookup.Get("c1").Reason);
        await _services.AssertUnlockedAsync("c1");
    }

    [Fact]
    public async Task AContainerThatCannotBeResumedIsReportedFrozenAndTheNextStartTriesAgain()
    {
        await _services.RunningContainerAsync("c1");
        var (workDir, _) = InterruptedCheckpointOf("c1");
        ResumeFails(int.MaxValue);
        using var events = _services.Bus.Subscribe();
        while (events.Events.TryRead(out _)) { } // the backlog: the container's own start

        await RecoverAsync();

        Assert.Equal(5, Resumes);
        var record = _services.Lookup.Get("c1");
        Assert.Equal(CheckpointRecovery.FrozenReason, record.Reason);
        Assert.Contains("container is busy", record.Message);
        Assert.True(events.Events.TryRead(out var reported), "no event reported the frozen container");
        Assert.Equal(("c1", ContainerEventType.ContainerCreatedEvent), (reported.ContainerId, reported.ContainerEventType));
        Assert.True(File.Exists(Path.Combine(workDir, CheckpointPipeline.InFlightFile)), "the marker must stay so the next start retries");
        await _services.AssertUnlockedAsync("c1");

        // The next start resumes it and clears the report.
        ResumeFails(0);
        await RecoverAsync();
        Assert.Equal("", _services.Lookup.Get("c1").Reason);
        Assert.False(Directory.Exists(workDir));
    }
}
