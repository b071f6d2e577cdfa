using System.Diagnostics;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Network;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>What the fakes were asked, in order, for tests of the order of a sequence.</summary>
public sealed class CallLog
{
    private readonly List<string> _calls = [];

    public void Add(string call)
    {
        lock (_calls) _calls.Add(call);
    }

    public IReadOnlyList<string> Calls
    {
        get
        {
            lock (_calls) return [.. _calls];
        }
    }
}

/// <summary>
/// A real `sleep`, standing in for a container's init process or its monitor: the services look at
/// /proc to see whether a process lives, and this needs neither root nor a runtime.
/// </summary>
public sealed class StandInProcess : IDisposable
{
    private readonly Process _process = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;

    public int Pid => _process.Id;

    public ProcessIdentity Identity => ProcessIdentity.Of(Pid)!;

    public void Kill()
    {
        if (_process.HasExited) return;
        _process.Kill();
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}

/// <summary>A clock the test sets and moves: the time the services record (CreatedAt, StartedAt, FinishedAt).</summary>
public sealed class FakeClock : TimeProvider
{
    public DateTimeOffset Now { get; set; } = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => Now;

    public long NowNanos => UnixNanos.Of(Now);

    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>Ids 1, 2, 3... in the first 12 of 64 hex digits (the part crictl shows), so a test knows the id it gets.</summary>
public sealed class SequentialIds : IIdSource
{
    private int _last;

    public string NewId() => Interlocked.Increment(ref _last).ToString("x12") + new string('0', 52);
}

/// <summary>The monitor: records exits as conmon would write its exit file, stamped with the test's clock.</summary>
public sealed class FakeMonitor(CallLog log, TimeProvider clock) : IContainerMonitor
{
    private readonly Dictionary<string, MonitoredExit> _exits = [];
    private readonly Dictionary<string, ProcessIdentity> _monitors = [];

    /// <summary>Names the conmon of the container created from <paramref name="bundleDir"/>, as its conmon.pid file does.</summary>
    public void Monitor(string bundleDir, ProcessIdentity conmon)
    {
        lock (_monitors) _monitors[bundleDir] = conmon;
    }

    public void RecordExit(string id, int exitCode)
    {
        lock (_exits) _exits[id] = new MonitoredExit(exitCode, OomKilled: false, clock.GetUtcNow().UtcDateTime);
    }

    /// <summary>What conmon's create does (returns the init pid or throws); unset, creating is not supported.</summary>
    public Func<ConmonLaunch, CancellationToken, Task<int>>? Create { get; set; }

    public Task<int> CreateAsync(ConmonLaunch launch, CancellationToken cancellationToken) =>
        Create is { } create ? create(launch, cancellationToken) : throw new NotSupportedException();

    public ProcessIdentity? MonitorOf(string bundleDir)
    {
        lock (_monitors) return _monitors.GetValueOrDefault(bundleDir) is { } conmon && conmon.IsAlive() ? conmon : null;
    }

    /// <summary>How many times an exit file was looked for: list and stats calls look once per container.</summary>
    public int ExitLookups => Volatile.Read(ref _exitLookups);

    private int _exitLookups;

    public MonitoredExit? ExitOf(string containerId, string bundleDir)
    {
        Interlocked.Increment(ref _exitLookups);
        lock (_exits) return _exits.GetValueOrDefault(containerId);
    }

    public bool HasExitRecord(string containerId)
    {
        lock (_exits) return _exits.ContainsKey(containerId);
    }

    public string AttachSocketDir(string containerId) => throw new NotSupportedException();

    public Task ReopenLogAsync(string bundleDir, string logPath, CancellationToken cancellationToken) => throw new NotSupportedException();

    /// <summary>Kills the stand-in conmon named for the bundle; the call is logged with the bundle's container id.</summary>
    public void KillLaunch(string bundleDir)
    {
        log.Add($"monitor.kill-launch {Path.GetFileName(Path.GetDirectoryName(bundleDir))}");
        ProcessIdentity? conmon;
        lock (_monitors) conmon = _monitors.GetValueOrDefault(bundleDir);
        if (conmon?.IsAlive() == true) NativeInterop.Processes.Kill(conmon.Pid, 9);
    }

    public void Forget(string containerId)
    {
        log.Add($"monitor.forget {containerId}");
        lock (_exits) _exits.Remove(containerId);
    }
}

/// <summary>
/// The OCI runtime over stand-in processes: a signal it does not ignore ends the process, and the
/// monitor then records the exit, as runc and conmon do together.
/// </summary>
public sealed class FakeRuntime(CallLog log, FakeMonitor monitor, string root) : IOciRuntime
{
    private readonly Dictionary<string, StandInProcess> _processes = [];

    public string Handler => "fake";
    public string BinaryPath => "/nonexistent/fake-runtime";
    public string Root => root;

    /// <summary>Signals the container's process ignores, as a process with a SIGTERM handler does.</summary>
    public HashSet<int> IgnoredSignals { get; } = [];

    /// <summary>Whether the monitor records the exit of a killed process (false: the monitor died first).</summary>
    public bool MonitorRecordsExits { get; set; } = true;

    /// <summary>Called inside <see cref="StartAsync"/>, <see cref="PauseAsync"/>, <see cref="CheckpointAsync"/> and <see cref="ResumeAsync"/> by name; throws to fail that step.</summary>
    public Func<string, CancellationToken, Task>? Step { get; set; }

    public void Run(string id, StandInProcess process)
    {
        lock (_processes) _processes[id] = process;
    }

    public Task<(string Version, bool CanCheckpoint)> VersionAsync(CancellationToken cancellationToken) => Task.FromResult(("fake 1.0", true));

    public Task<OciFeatures> FeaturesAsync() => Task.FromResult(OciFeatures.None);

    /// <summary>Replaces the runtime's view of the container (`state`); by default it follows the stand-in process.</summary>
    public Func<string, Task<OciState?>>? State { get; set; }

    public Task<OciState?> StateAsync(string id, CancellationToken cancellationToken)
    {
        log.Add($"runtime.state {id}");
        if (State is { } state) return state(id);
        StandInProcess? process;
        lock (_processes) process = _processes.GetValueOrDefault(id);
        return Task.FromResult(process is null ? null : new OciState(ProcessIdentity.Of(process.Pid) is null ? "stopped" : "running", process.Pid));
    }

    public Task StartAsync(string id, CancellationToken cancellationToken) => StepAsync($"runtime.start {id}", cancellationToken);

    public Task<bool> KillAsync(string id, int signal, bool all, CancellationToken cancellationToken)
    {
        log.Add($"runtime.kill {id} {signal}");
        StandInProcess? process;
        lock (_processes) process = _processes.GetValueOrDefault(id);
        if (process is null || IgnoredSignals.Contains(signal)) return Task.FromResult(process is not null);
        process.Kill();
        if (MonitorRecordsExits) monitor.RecordExit(id, 128 + signal);
        return Task.FromResult(true);
    }

    public Task DeleteAsync(string id, CancellationToken cancellationToken)
    {
        log.Add($"runtime.delete {id}");
        lock (_processes)
        {
            if (_processes.Remove(id, out var process)) process.Kill();
        }
        return Task.CompletedTask;
    }

    public Task UpdateResourcesAsync(string id, string resourcesJson, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<CapturedOutput> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, int outputLimit, string pidFile, CancellationToken cancellationToken)
    {
        log.Add($"runtime.exec {id} {Path.GetFileName(pidFile)}");
        return Task.FromResult(new CapturedOutput(0, new CappedBuffer(outputLimit), new CappedBuffer(outputLimit), TimeSpan.Zero));
    }

    /// <summary>Plays the exec'd process of a streaming exec: its stdio and cancellation in, its exit code out.</summary>
    public Func<ExecStdio, CancellationToken, Task<int>>? AttachedExec { get; set; }

    public Task<int> ExecAttachedAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, string pidFile, CancellationToken cancellationToken)
    {
        log.Add($"runtime.exec-attached {id} {string.Join(' ', command)} terminal={stdio.Terminal}");
        return (AttachedExec ?? throw new NotSupportedException("no exec'd process in this test"))(stdio, cancellationToken);
    }

    public Task PauseAsync(string id, CancellationToken cancellationToken) => StepAsync($"runtime.pause {id}", cancellationToken);

    public Task ResumeAsync(string id, CancellationToken cancellationToken) => StepAsync($"runtime.resume {id}", cancellationToken);

    public Task CheckpointAsync(string id, string imagePath, string workPath, IEnumerable<string> criuOptions, TimeSpan limit, CancellationToken cancellationToken) =>
        StepAsync($"runtime.checkpoint {id}", cancellationToken);

    private async Task StepAsync(string call, CancellationToken cancellationToken)
    {
        log.Add(call);
        if (Step is { } step) await step(call, cancellationToken);
    }
}

/// <summary>The pod network: attach and detach recorded, nothing configured.</summary>
public sealed class FakePodNetwork(CallLog log) : IPodNetwork
{
    public Task<IReadOnlyList<string>> AttachAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        log.Add($"network.attach {pod.Id}");
        return Task.FromResult<IReadOnlyList<string>>(["10.88.0.2"]);
    }

    public Task DetachAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        log.Add($"network.detach {pod.Id}");
        return Task.CompletedTask;
    }

    public RuntimeCondition Readiness() => new() { Type = "NetworkReady", Status = true };
}
