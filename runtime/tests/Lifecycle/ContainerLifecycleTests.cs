using CriShim.Runtime.Containers;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>The container and pod lifecycle over fakes of the runtime and the monitor: what is called, in which order, and the state it leaves.</summary>
public sealed class ContainerLifecycleTests : IDisposable
{
    private readonly ServiceHarness _services = new();

    public void Dispose() => _services.Dispose();

    private static int IndexOf(IReadOnlyList<string> calls, string call)
    {
        int index = calls.ToList().IndexOf(call);
        Assert.True(index >= 0, $"{call} was never called; calls: {string.Join(", ", calls)}");
        return index;
    }

    [Fact]
    public async Task StartRunsTheContainerAndStopEndsItWithItsStopSignal()
    {
        _services.CreatedContainer("c1");

        await _services.Containers.StartAsync("c1", CancellationToken.None);
        Assert.Equal(ContainerState.ContainerRunning, _services.Lookup.Get("c1").State);
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        var record = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, record.State);
        Assert.Equal(128 + Signals.Parse("SIGTERM"), record.ExitCode);
        Assert.Equal(["runtime.start c1", $"runtime.kill c1 {Signals.Parse("SIGTERM")}"], _services.Log.Calls);
    }

    [Fact]
    public async Task AStopTimeoutBeyondWhatATimeSpanHoldsIsAGracePeriodNotAnError()
    {
        _services.CreatedContainer("c1");
        await _services.Containers.StartAsync("c1", CancellationToken.None);

        // The CRI's timeout is int64 seconds: the fuzzer's long.MaxValue was an INTERNAL overflow.
        await _services.Containers.StopAsync("c1", long.MaxValue, CancellationToken.None);

        Assert.Equal(ContainerState.ContainerExited, _services.Lookup.Get("c1").State);
        Assert.Equal(["runtime.start c1", $"runtime.kill c1 {Signals.Parse("SIGTERM")}"], _services.Log.Calls);
    }

    [Fact]
    public async Task StartAndExitAreStampedWithTheClockAndSoAreTheirEvents()
    {
        _services.CreatedContainer("c1");
        using var events = _services.Bus.Subscribe();
        var startedAt = _services.Clock.Now;

        await _services.Containers.StartAsync("c1", CancellationToken.None);
        _services.Clock.Advance(TimeSpan.FromSeconds(7));
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        var status = ContainerStatusMapper.Status(_services.Lookup.Get("c1"));
        Assert.Equal(UnixNanos.Of(startedAt), status.StartedAt);
        // The time in conmon's exit file, which the fake monitor takes from the same clock.
        Assert.Equal(UnixNanos.Of(startedAt.AddSeconds(7)), status.FinishedAt);
        Assert.True(events.Events.TryRead(out var started));
        Assert.Equal(ContainerEventType.ContainerStartedEvent, started.ContainerEventType);
        Assert.Equal(UnixNanos.Of(startedAt), started.CreatedAt);
        Assert.True(events.Events.TryRead(out var stopped));
        Assert.Equal(ContainerEventType.ContainerStoppedEvent, stopped.ContainerEventType);
        Assert.Equal(UnixNanos.Of(startedAt.AddSeconds(7)), stopped.CreatedAt);
    }

    [Fact]
    public async Task AnExitNoExitFileReportsIsStampedWithTheClockWhenItIsNoticed()
    {
        var (_, init, monitor) = await _services.RunningContainerAsync("c1");
        monitor.Kill();
        init.Kill();
        _services.Clock.Advance(TimeSpan.FromMinutes(3));

        var record = _services.Lookup.Get("c1");

        Assert.Equal(ContainerState.ContainerExited, record.State);
        Assert.Equal(_services.Clock.NowNanos, record.FinishedAtNanos);
    }

    [Fact]
    public async Task ExecSyncNamesItsPidFileFromTheIdSource()
    {
        await _services.RunningContainerAsync("c1");

        await _services.Operations.ExecSyncAsync("c1", ["true"], 0, CancellationToken.None);

        Assert.Contains("runtime.exec c1 c1-000000000001.pid", _services.Log.Calls);
    }

    [Fact]
    public async Task AContainerStartsOnlyOnce()
    {
        await _services.RunningContainerAsync("c1");

        await Assert.ThrowsAsync<WrongStateException>(() => _services.Containers.StartAsync("c1", CancellationToken.None));
    }

    [Fact]
    public async Task StopKillsAContainerThatIgnoresItsStopSignal()
    {
        await _services.RunningContainerAsync("c1");
        _services.Runtime.IgnoredSignals.Add(Signals.Parse("SIGTERM"));

        await _services.Containers.StopAsync("c1", 1, CancellationToken.None);

        Assert.Equal(ContainerState.ContainerExited, _services.Lookup.Get("c1").State);
        Assert.Equal(128 + Signals.Kill, _services.Lookup.Get("c1").ExitCode);
        Assert.Equal(["runtime.start c1", $"runtime.kill c1 {Signals.Parse("SIGTERM")}", $"runtime.kill c1 {Signals.Kill}"], _services.Log.Calls);
    }

    [Fact]
    public async Task StopOfACreatedContainerKillsItAtOnceAndRecordsTheExit()
    {
        _services.CreatedContainer("c1");

        await _services.Containers.StopAsync("c1", 30, CancellationToken.None);

        var record = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, record.State);
        // Never started: no stop signal, SIGKILL only.
        Assert.All(_services.Log.Calls, call => Assert.Equal($"runtime.kill c1 {Signals.Kill}", call));
        Assert.NotEmpty(_services.Log.Calls);
    }

    [Fact]
    public async Task StopOfAContainerWhoseMonitorDiedEndsItAndRecordsTheLostExit()
    {
        var (_, init, monitor) = await _services.RunningContainerAsync("c1");
        monitor.Kill();
        // With its conmon gone, no exit file will come.
        _services.Runtime.MonitorRecordsExits = false;

        // While the process outlives its monitor, the container still runs.
        Assert.Equal(ContainerState.ContainerRunning, _services.Lookup.Get("c1").State);
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        var record = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, record.State);
        Assert.Equal(255, record.ExitCode);
        Assert.Contains("conmon died", record.Message);
        Assert.False(init.Identity is not null && record.IsInitAlive());
    }

    [Theory]
    [InlineData("stopped", "conmon died; fake reports the container stopped")]
    [InlineData(null, "conmon died; fake does not know the container")]
    public async Task AContainerWhoseMonitorDiedAndThatTheRuntimeNoLongerRunsHasExited(string? runtimeStatus, string message)
    {
        var (record, _, monitor) = await _services.RunningContainerAsync("c1");
        monitor.Kill();
        _services.Runtime.State = _ => Task.FromResult(runtimeStatus is null ? null : new OciState(runtimeStatus, record.Pid));

        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        var stopped = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, stopped.State);
        Assert.Equal(255, stopped.ExitCode);
        Assert.Equal(message, stopped.Message);
        // The runtime's word ends it: nothing is signalled.
        Assert.DoesNotContain(_services.Log.Calls, call => call.StartsWith("runtime.kill", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AContainerWhoseProcessOutlivedItsMonitorRunsUntilStopKillsIt()
    {
        var (record, _, monitor) = await _services.RunningContainerAsync("c1");
        monitor.Kill();
        _services.Runtime.MonitorRecordsExits = false;

        await _services.Exits.ReconcileWithRuntimeAsync(record, CancellationToken.None);
        Assert.Equal(ContainerState.ContainerRunning, _services.Lookup.Get("c1").State);
        Assert.Contains("runtime.state c1", _services.Log.Calls);

        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);
        var stopped = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, stopped.State);
        Assert.Equal(255, stopped.ExitCode);
        Assert.Contains($"runtime.kill c1 {Signals.Parse("SIGTERM")}", _services.Log.Calls);
    }

    [Fact]
    public async Task ARuntimeThatTimesOutOnStateLeavesNoContainerStuck()
    {
        var (_, _, monitor) = await _services.RunningContainerAsync("c1");
        monitor.Kill();
        _services.Runtime.MonitorRecordsExits = false;
        _services.Runtime.State = _ => throw new ExternalCommandTimeoutException("fake", ["state", "c1"], TimeSpan.FromSeconds(5));

        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        var stopped = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, stopped.State);
        Assert.Equal(255, stopped.ExitCode);
        Assert.Contains("conmon died", stopped.Message);
    }

    [Fact]
    public async Task RemoveDeletesTheRuntimeStateBeforeTheRootfsAndTheRecordLast()
    {
        await _services.RunningContainerAsync("c1");
        await _services.Containers.StopAsync("c1", 10, CancellationToken.None);

        await _services.Containers.RemoveAsync("c1", CancellationToken.None);

        var calls = _services.Log.Calls;
        Assert.True(IndexOf(calls, "runtime.delete c1") < IndexOf(calls, "rootfs.remove c1"));
        Assert.True(IndexOf(calls, "rootfs.remove c1") < IndexOf(calls, "monitor.forget c1"));
        Assert.Null(_services.ContainerRecords.Get("c1"));
        await Assert.ThrowsAsync<NotFoundException>(() => Task.FromResult(_services.Lookup.Get("c1")));
        // Removing again is a success, as the CRI requires.
        await _services.Containers.RemoveAsync("c1", CancellationToken.None);
    }

    [Fact]
    public async Task RemovePodStopsItsContainersBeforeTheInfraAndTheNetworkAndRemovesThemBeforeThePod()
    {
        var pod = _services.ReadyPod();
        await _services.RunningContainerAsync("c1");
        await _services.RunningContainerAsync("c2");

        await _services.Pods.RemoveAsync(pod.Id, CancellationToken.None);

        var calls = _services.Log.Calls;
        int infraDeleted = IndexOf(calls, "runtime.delete pod1");
        foreach (string container in new[] { "c1", "c2" })
        {
            // Every container is killed while its pod's namespaces still exist, and removed after.
            Assert.True(IndexOf(calls, $"runtime.kill {container} {Signals.Kill}") < infraDeleted);
            Assert.True(IndexOf(calls, $"runtime.delete {container}") > infraDeleted);
            Assert.Null(_services.ContainerRecords.Get(container));
        }
        Assert.True(infraDeleted < IndexOf(calls, "monitor.forget pod1"));
        Assert.True(infraDeleted < IndexOf(calls, "network.detach pod1"));
        Assert.Null(_services.PodRecords.Get(pod.Id));
    }

    [Fact]
    public async Task AStartWhoseRuntimeTimesOutKillsTheContainerAndRecordsTheFailedStart()
    {
        var (_, init, _) = _services.CreatedContainer("c1");
        _services.Runtime.Step = (call, _) => call == "runtime.start c1"
            ? throw new ExternalCommandTimeoutException("runc", ["start", "c1"], TimeSpan.FromSeconds(30))
            : Task.CompletedTask;

        await Assert.ThrowsAsync<ExternalCommandTimeoutException>(() => _services.Containers.StartAsync("c1", CancellationToken.None));

        var record = _services.Lookup.Get("c1");
        Assert.Equal(ContainerState.ContainerExited, record.State);
        Assert.Equal("StartError", record.Reason);
        Assert.Contains($"runtime.kill c1 {Signals.Parse("SIGKILL")}", _services.Log.Calls);
        Assert.Null(ProcessIdentity.Of(init.Pid));
        await _services.AssertUnlockedAsync("c1");
    }

    [Fact]
    public async Task ARestoreWhoseMonitorTimesOutRemovesTheHalfMadeContainer()
    {
        var (record, _, _) = _services.CreatedContainer("c1");
        _services.ContainerRecords.Update(record.Id, current => current with
        {
            Pid = 0, Init = null, Monitor = null,
            Restore = new ContainerRestoreState(Path.Combine(_services.Scratch, "c.tar"), Path.Combine(_services.Scratch, "images"), "original"),
        });
        _services.Monitor.Create = (launch, _) => throw new ExternalCommandTimeoutException("conmon", ["--restore", launch.RestoreImagesDir!], TimeSpan.FromSeconds(30));

        await Assert.ThrowsAsync<ExternalCommandTimeoutException>(() => _services.Containers.StartAsync("c1", CancellationToken.None));

        Assert.Null(_services.ContainerRecords.Get("c1"));
        Assert.Contains("runtime.delete c1", _services.Log.Calls);
        Assert.Contains("monitor.forget c1", _services.Log.Calls);
    }
}
