using CriShim.Runtime.Containers;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>
/// A StartContainer cut short by a daemon kill -9, as the next daemon finds it (the start's marker on the record)
/// and settles it from the runtime's state: one verdict per state the runtime can report.
/// </summary>
public sealed class InterruptedStartTests : IDisposable
{
    private const long MarkedAt = 1_000;
    private readonly ServiceHarness _services = new();

    public void Dispose() => _services.Dispose();

    /// <summary>The record as a start that was cut short leaves it; a restore has no process nor conmon recorded yet.</summary>
    private (ContainerRecord Record, StandInProcess Init, StandInProcess Monitor) CutShortStart(string id, bool restore = false)
    {
        var (created, init, monitor) = _services.CreatedContainer(id);
        ContainerRestoreState? restoreState = null;
        if (restore)
        {
            string images = Directory.CreateDirectory(Path.Combine(_services.Scratch, id, "checkpoint")).FullName;
            File.WriteAllText(Path.Combine(images, "inventory.img"), "");
            restoreState = new ContainerRestoreState(Path.Combine(_services.Scratch, "archive.tar"), images, "original");
        }
        var record = _services.ContainerRecords.Update(created.Id, current => restoreState is null
            ? current with { StartingAtNanos = MarkedAt }
            : current with { StartingAtNanos = MarkedAt, Restore = restoreState, Pid = 0, Init = null, Monitor = null });
        return (record, init, monitor);
    }

    private void RuntimeReports(string? status, int pid = 0) =>
        _services.Runtime.State = _ => Task.FromResult(status is null ? null : new OciState(status, pid));

    private Task SettleAsync(ContainerRecord record) => _services.Exits.ReconcileWithRuntimeAsync(record, CancellationToken.None);

    /// <summary>The record as the next daemon reads it from disk.</summary>
    private ContainerRecord Persisted(string id) =>
        new RecordStore<ContainerRecord>(_services.Paths.Containers, ContainerRecordJson.Default.ContainerRecord, NullLogger.Instance).Get(id)!;

    [Fact]
    public async Task StartSavesItsMarkerBeforeTheRuntimeIsLaunchedAndClearsItWhenRunning()
    {
        _services.CreatedContainer("c1");
        long seenByTheRuntime = 0;
        _services.Runtime.Step = (call, _) =>
        {
            if (call == "runtime.start c1") seenByTheRuntime = Persisted("c1").StartingAtNanos;
            return Task.CompletedTask;
        };

        await _services.Containers.StartAsync("c1", CancellationToken.None);

        Assert.NotEqual(0, seenByTheRuntime);
        Assert.Equal((ContainerState.ContainerRunning, 0L), (Persisted("c1").State, Persisted("c1").StartingAtNanos));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ARuntimeThatRunsTheContainerMakesItRunningWithTheRuntimesPidAndItStopsAsAnyOther(bool restore)
    {
        var (record, init, monitor) = CutShortStart("c1", restore);
        _services.Monitor.Monitor(_services.Paths.ContainerBundle("c1"), monitor.Identity);

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal(ContainerState.ContainerRunning, settled.State);
        Assert.Equal((0L, MarkedAt), (settled.StartingAtNanos, settled.StartedAtNanos));
        Assert.Equal(init.Pid, settled.Pid);
        Assert.Equal(init.Identity, settled.Init);
        Assert.Equal(monitor.Identity, settled.Monitor);
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);
        Assert.Equal(ContainerState.ContainerExited, _services.Lookup.Get("c1").State);
        Assert.Null(ProcessIdentity.Of(init.Pid));
    }

    [Fact]
    public async Task AContainerTheRuntimeStillHoldsCreatedGoesBackToCreatedAndStartsOnRetry()
    {
        var (record, init, _) = CutShortStart("c1");
        RuntimeReports("created", init.Pid);

        await SettleAsync(record);

        Assert.Equal((ContainerState.ContainerCreated, 0L), (Persisted("c1").State, Persisted("c1").StartingAtNanos));
        _services.Runtime.State = null;
        await _services.Containers.StartAsync("c1", CancellationToken.None);
        Assert.Equal(ContainerState.ContainerRunning, _services.Lookup.Get("c1").State);
        Assert.Contains("runtime.start c1", _services.Log.Calls);
    }

    [Fact]
    public async Task ARestoreItsConmonStillRunsIsLeftUnderWayAndAStartMeanwhileIsRefused()
    {
        var (record, init, monitor) = CutShortStart("c1", restore: true);
        _services.Monitor.Monitor(_services.Paths.ContainerBundle("c1"), monitor.Identity);
        RuntimeReports(null);

        await SettleAsync(record);
        await Assert.ThrowsAsync<WrongStateException>(() => _services.Containers.StartAsync("c1", CancellationToken.None));

        Assert.Equal((ContainerState.ContainerCreated, MarkedAt), (Persisted("c1").State, Persisted("c1").StartingAtNanos));
        Assert.DoesNotContain(_services.Log.Calls, call => call.StartsWith("runtime.start", StringComparison.Ordinal) || call.StartsWith("runtime.delete", StringComparison.Ordinal));
        // conmon's restore finishes: the container runs.
        RuntimeReports("running", init.Pid);
        await SettleAsync(record);
        Assert.Equal((ContainerState.ContainerRunning, init.Pid), (Persisted("c1").State, Persisted("c1").Pid));
    }

    [Fact]
    public async Task ARestoreWhoseConmonDiedHasWhatTheRuntimeMadeDeletedAndCanBeRetried()
    {
        var (record, _, _) = CutShortStart("c1", restore: true);
        RuntimeReports("created", 4242);

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerCreated, 0L, 0), (settled.State, settled.StartingAtNanos, settled.Pid));
        Assert.Null(settled.Monitor);
        Assert.Contains("runtime.delete c1", _services.Log.Calls);
    }

    [Fact]
    public async Task ARestoredProcessWhoseConmonDiedRunsUnmonitoredAndStopRecordsConmonsDeath()
    {
        var (record, init, monitor) = CutShortStart("c1", restore: true);
        monitor.Kill();

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerRunning, init.Pid), (settled.State, settled.Pid));
        Assert.True(ContainerExitRecorder.IsUnmonitored(settled));
        Assert.False(Directory.Exists(record.Restore!.ImagesDir));
        // Its exit goes to no conmon: the stop records why it is unknown.
        _services.Runtime.MonitorRecordsExits = false;
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);
        var stopped = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 255), (stopped.State, stopped.ExitCode));
        Assert.Contains("conmon died", stopped.Message);
    }

    [Fact]
    public async Task ARestoreWhoseConmonDiedHasItsOrphansKilledBeforeItIsUndone()
    {
        var (record, _, _) = CutShortStart("c1", restore: true);
        RuntimeReports(null);

        await SettleAsync(record);

        var calls = _services.Log.Calls.ToList();
        Assert.True(calls.IndexOf("monitor.kill-launch c1") is >= 0 and var killed && killed < calls.IndexOf("runtime.delete c1"), string.Join(", ", calls));
        Assert.True(Directory.Exists(record.Restore!.ImagesDir));
    }

    [Fact]
    public async Task AStopDuringARestoreUnderWayWaitsForItToFinishThenStopsTheRestoredProcess()
    {
        var (record, init, monitor) = CutShortStart("c1", restore: true);
        _services.Monitor.Monitor(_services.Paths.ContainerBundle("c1"), monitor.Identity);
        int looks = 0;
        // The restore finishes at the stop's third look.
        _services.Runtime.State = _ => Task.FromResult(++looks < 3 ? null : new OciState(ProcessIdentity.Of(init.Pid) is null ? "stopped" : "running", init.Pid));

        await _services.Containers.StopAsync("c1", 30, CancellationToken.None);

        var stopped = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 128 + Signals.Term, MarkedAt), (stopped.State, stopped.ExitCode, stopped.StartedAtNanos));
        Assert.DoesNotContain("monitor.kill-launch c1", _services.Log.Calls);
        Assert.Null(ProcessIdentity.Of(init.Pid));
        Assert.False(Directory.Exists(record.Restore!.ImagesDir));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AStopOrRemoveDuringARestoreThatDoesNotFinishInTimeKillsConmonAndTheRestore(bool remove)
    {
        var (record, _, monitor) = CutShortStart("c1", restore: true);
        _services.Monitor.Monitor(_services.Paths.ContainerBundle("c1"), monitor.Identity);
        RuntimeReports(null);

        if (remove) await _services.Containers.RemoveAsync("c1", CancellationToken.None);
        else await _services.Containers.StopAsync("c1", 0, CancellationToken.None);

        Assert.Null(ProcessIdentity.Of(monitor.Pid));
        var calls = _services.Log.Calls.ToList();
        Assert.True(calls.IndexOf("monitor.kill-launch c1") is >= 0 and var killed && killed < calls.IndexOf("runtime.delete c1"), string.Join(", ", calls));
        if (remove)
        {
            Assert.Null(_services.ContainerRecords.Get("c1"));
            return;
        }
        var stopped = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 255, 0L), (stopped.State, stopped.ExitCode, stopped.StartingAtNanos));
        Assert.Contains("had not finished when the container was stopped", stopped.Message);
        // Kept: the restore did not happen.
        Assert.True(Directory.Exists(record.Restore!.ImagesDir));
    }

    [Fact]
    public async Task ARestoreWhoseConmonDiedAndWhoseImagesAreGoneIsExitedWithTheReason()
    {
        var (record, _, _) = CutShortStart("c1", restore: true);
        RuntimeReports(null);
        Directory.Delete(record.Restore!.ImagesDir, recursive: true);

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 255, 0L), (settled.State, settled.ExitCode, settled.StartingAtNanos));
        Assert.Contains("CRIU images", settled.Message);
        Assert.Contains("killed during StartContainer", settled.Message);
    }

    [Fact]
    public async Task AProcessThatRanAndEndedIsExitedWithTheCodeConmonRecorded()
    {
        var (record, init, _) = CutShortStart("c1");
        init.Kill();
        _services.Monitor.RecordExit("c1", 3);

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 3, MarkedAt), (settled.State, settled.ExitCode, settled.StartedAtNanos));
    }

    [Fact]
    public async Task AStoppedContainerWithoutConmonNorExitFileIsExited255WithTheReason()
    {
        var (record, init, monitor) = CutShortStart("c1");
        init.Kill();
        monitor.Kill();

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 255, "Error"), (settled.State, settled.ExitCode, settled.Reason));
        Assert.Contains("killed during StartContainer; conmon is gone and fake reports the container stopped", settled.Message);
    }

    [Fact]
    public async Task AStartedContainerTheRuntimeNoLongerKnowsIsExited255WithTheReason()
    {
        var (record, _, _) = CutShortStart("c1");
        RuntimeReports(null);

        await SettleAsync(record);

        var settled = Persisted("c1");
        Assert.Equal((ContainerState.ContainerExited, 255), (settled.State, settled.ExitCode));
        Assert.Contains("fake does not know the container", settled.Message);
    }
}
