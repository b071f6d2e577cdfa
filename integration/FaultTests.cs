using System.Text.Json;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// State stays true after faults: conmon killed, a container's process killed with it, a reboot, a stuck RPC at
/// shutdown, a daemon killed mid-checkpoint or mid-start.
/// </summary>
[Collection(RegistryCollection.Name)]
public class FaultTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>The kubelet's own limit for each teardown call: past it, the pod could never be torn down.</summary>
    private static DateTime TeardownDeadline() => DateTime.UtcNow.AddSeconds(10);

    private async Task<(PodSandboxConfig Config, string PodId, string ContainerId)> StartSleeperAsync(Daemon daemon, string name,
        string script = "sleep 3600", string handler = "")
    {
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig, handler);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sh", "-c", script));
        return (podConfig, podId, id);
    }

    private static async Task TearDownWithinDeadlinesAsync(Daemon daemon, string podId, string containerId)
    {
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = containerId, Timeout = 2 }, deadline: TeardownDeadline());
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
    }

    /// <summary>Reads a GetContainerEvents stream until the STOPPED event of <paramref name="id"/>.</summary>
    private static async Task<ContainerEventResponse> StoppedEventAsync(AsyncServerStreamingCall<ContainerEventResponse> events, string id)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (await events.ResponseStream.MoveNext(limit.Token))
        {
            var current = events.ResponseStream.Current;
            if (current.ContainerId == id && current.ContainerEventType == ContainerEventType.ContainerStoppedEvent) return current;
        }
        throw new InvalidOperationException("the event stream ended");
    }

    /// <summary>`runc|crun state` of the container, as the daemon's handler keeps it (its root under the run root).</summary>
    private static JsonElement RuntimeState(Daemon daemon, string handler, string id) =>
        JsonDocument.Parse(HostCommand.Output(handler, "--root", Path.Combine(daemon.Dirs.RunRoot, handler), "state", id)).RootElement;

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task AContainerWhoseConmonAndProcessWereKilledReadsExitedAndItsPodTearsDown(string handler)
    {
        await using var daemon = await Daemon.StartAsync();
        var (_, podId, id) = await StartSleeperAsync(daemon, "conmon-and-init-killed", handler: handler);
        using var events = daemon.Runtime.GetContainerEvents(new GetEventsRequest());
        await events.ResponseHeadersAsync;

        int init = await NodeFaults.InitPidAsync(daemon, id);
        NodeFaults.Kill(NodeFaults.ConmonPid(daemon.Dirs, id));
        NodeFaults.Kill(init);
        await Cri.WaitUntilAsync(() => Task.FromResult(!NodeFaults.IsRunning(init)), TimeSpan.FromSeconds(10), "the container process to die");

        // One status call tells: no exit file will ever come, and the process is gone.
        var status = await daemon.StatusAsync(id);
        Assert.Equal(ContainerState.ContainerExited, status.State);
        Assert.Equal((255, "Error"), (status.ExitCode, status.Reason));
        Assert.Contains("conmon died", status.Message);
        var stopped = await StoppedEventAsync(events, id);
        Assert.Equal(ContainerState.ContainerExited, Assert.Single(stopped.ContainersStatuses, s => s.Id == id).State);

        await TearDownWithinDeadlinesAsync(daemon, podId, id);
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task AContainerThatOutlivedItsConmonRunsOnAndStopContainerEndsIt(string handler)
    {
        await using var daemon = await Daemon.StartAsync();
        var (_, podId, id) = await StartSleeperAsync(daemon, "conmon-killed", handler: handler);
        int init = await NodeFaults.InitPidAsync(daemon, id);
        int conmon = NodeFaults.ConmonPid(daemon.Dirs, id);
        NodeFaults.Kill(conmon);
        await Cri.WaitUntilAsync(() => Task.FromResult(!NodeFaults.IsRunning(conmon)), TimeSpan.FromSeconds(10), "conmon to die");

        // The process runs on, as the runtime says too, and it is still the process the daemon recorded.
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        Assert.True(NodeFaults.IsRunning(init));
        var state = RuntimeState(daemon, handler, id);
        Assert.Equal(("running", init), (state.GetProperty("status").GetString(), state.GetProperty("pid").GetInt32()));
        Assert.Equal(init, await NodeFaults.InitPidAsync(daemon, id));

        // The stop goes through the runtime, and no exit file comes.
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 1 }, deadline: TeardownDeadline());
        var status = await daemon.StatusAsync(id);
        Assert.Equal(ContainerState.ContainerExited, status.State);
        Assert.NotEqual(0, status.FinishedAt);
        // Its exit status went to whichever process reaped the orphan, not to a conmon: unknown, so 255, and why.
        Assert.Equal((255, "Error"), (status.ExitCode, status.Reason));
        Assert.Contains("conmon died", status.Message);
        Assert.False(NodeFaults.IsRunning(init), "StopContainer left the container's process running");

        await TearDownWithinDeadlinesAsync(daemon, podId, id);
    }

    [Fact]
    public async Task AfterARebootEveryContainerIsExitedEveryPodNotReadyAndAllOfItIsRemoved()
    {
        var dirs = DaemonDirs.Create();
        try
        {
            PodSandboxConfig podConfig;
            string podId, running, created;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                (podConfig, podId, running) = await StartSleeperAsync(first, "reboot");
                created = (await first.Runtime.CreateContainerAsync(new CreateContainerRequest
                {
                    PodSandboxId = podId, Config = Cri.Container("never-started", Busybox, "sleep", "3600"), SandboxConfig = podConfig,
                })).ContainerId;
                await first.KillAsync();
            }
            NodeFaults.SimulateReboot(dirs);

            await using var second = await Daemon.StartAsync(dirs);
            var containers = (await second.Runtime.ListContainersAsync(new ListContainersRequest())).Containers;
            Assert.Equal(new[] { created, running }.Order(), containers.Select(c => c.Id).Order());
            Assert.All(containers, c => Assert.Equal(ContainerState.ContainerExited, c.State));
            Assert.Equal(PodSandboxState.SandboxNotready, Assert.Single((await second.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items).State);
            Assert.Equal(PodSandboxState.SandboxNotready,
                (await second.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status.State);

            // The dead pod's namespaces are gone (its netns path may even be reused): nothing may join them.
            var refused = await Assert.ThrowsAsync<RpcException>(() => second.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = podId, Config = Cri.Container("late", Busybox, "sleep", "3600"), SandboxConfig = podConfig,
            }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

            await second.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = created }, deadline: TeardownDeadline());
            await TearDownWithinDeadlinesAsync(second, podId, running);
            Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), line => line.Contains(dirs.Base, StringComparison.Ordinal));
            foreach (string kind in new[] { "pods", "containers", Path.Combine("cni", "results") })
            {
                string dir = Path.Combine(dirs.Root, kind);
                Assert.Empty(Directory.Exists(dir) ? Directory.GetFileSystemEntries(dir) : []);
            }
            Assert.False(Directory.Exists(Path.Combine(dirs.RunRoot, "pods", podId)));
        }
        finally
        {
            dirs.Delete();
        }
    }

    [Fact]
    public async Task SigtermEndsTheDaemonWithinSecondsWhileAStopWaitsOutALongGracePeriodAndTheStopCanBeRepeated()
    {
        var dirs = DaemonDirs.Create();
        try
        {
            string podId, id;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                (_, podId, id) = await StartSleeperAsync(first, "shutdown", "trap '' TERM; sleep 3600");
                // The container ignores SIGTERM: the kubelet's grace period is what this stop waits out.
                var stuck = first.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 600 }).ResponseAsync;
                await Task.Delay(TimeSpan.FromSeconds(1));
                Assert.False(stuck.IsCompleted);
                HostCommand.Output("kill", "-TERM", first.ProcessId.ToString());
                Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(10)));
                await Assert.ThrowsAsync<RpcException>(() => stuck);
            }

            // What was cut short is repeated after the restart, as the kubelet does.
            await using var second = await Daemon.StartAsync(dirs);
            Assert.Equal(ContainerState.ContainerRunning, (await second.StatusAsync(id)).State);
            await TearDownWithinDeadlinesAsync(second, podId, id);
        }
        finally
        {
            dirs.Delete();
        }
    }

    [Fact]
    public async Task AnInterruptedCheckpointIsUndoneAfterTheSocketServesWithItsContainerLockedMeanwhile()
    {
        var dirs = DaemonDirs.Create();
        System.Diagnostics.Process? orphan = null;
        try
        {
            string podId, id;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                (_, podId, id) = await StartSleeperAsync(first, "checkpoint-recovery");
                await first.KillAsync();
            }
            // What a daemon killed mid-checkpoint leaves: the container frozen, the in-flight marker, and a
            // runtime process still dumping into the work dir (its command line names it) with minutes to go.
            string runcRoot = Path.Combine(dirs.RunRoot, "runc");
            HostCommand.Output("runc", "--root", runcRoot, "pause", id);
            string workDir = LeaveInterruptedCheckpoint(dirs, id, "runc");
            orphan = System.Diagnostics.Process.Start("sh", ["-c", "sleep 600", workDir])!;

            await using var second = await Daemon.StartAsync(dirs);
            Assert.Equal(ContainerState.ContainerRunning, (await second.StatusAsync(id)).State);
            // Locked while it is recovered: no call acts on the frozen container.
            var locked = await Assert.ThrowsAsync<RpcException>(() => second.Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
            {
                ContainerId = id, Linux = new LinuxContainerResources { CpuShares = 512 },
            }, deadline: DateTime.UtcNow.AddSeconds(2)).ResponseAsync);
            Assert.Equal(StatusCode.DeadlineExceeded, locked.StatusCode);

            orphan.Kill();
            await Cri.WaitUntilAsync(() => Task.FromResult(!Directory.Exists(workDir)), TimeSpan.FromSeconds(20), "the recovery to finish");
            Assert.Contains("\"status\": \"running\"", HostCommand.Output("runc", "--root", runcRoot, "state", id));
            await TearDownWithinDeadlinesAsync(second, podId, id);
        }
        finally
        {
            orphan?.Kill();
            orphan?.Dispose();
            dirs.Delete();
        }
    }

    [Fact]
    public async Task AnInterruptedCheckpointWhoseHandlerWasRemovedIsReportedFrozenAndLeavesItsContainerUnlocked()
    {
        var dirs = DaemonDirs.Create();
        try
        {
            string podId, id;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                (_, podId, id) = await StartSleeperAsync(first, "checkpoint-handler-gone");
                await first.KillAsync();
            }
            // A crash mid-checkpoint left the container frozen, and the node's config no longer has the marker's handler.
            string runcRoot = Path.Combine(dirs.RunRoot, "runc");
            HostCommand.Output("runc", "--root", runcRoot, "pause", id);
            string workDir = LeaveInterruptedCheckpoint(dirs, id, "retired");

            await using var second = await Daemon.StartAsync(dirs);
            await Cri.WaitUntilAsync(async () => (await second.StatusAsync(id)).Reason == "Frozen", TimeSpan.FromSeconds(20), "the frozen container to be reported");
            Assert.Contains("\"retired\" is no longer configured", (await second.StatusAsync(id)).Message);
            // Reported, not left locked: calls on the container go through again.
            await second.Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
            {
                ContainerId = id, Linux = new LinuxContainerResources { CpuShares = 512 },
            }, deadline: DateTime.UtcNow.AddSeconds(10));
            // The marker stays for the next start; the operator thaws the container.
            Assert.True(Directory.Exists(workDir));
            HostCommand.Output("runc", "--root", runcRoot, "resume", id);
            await TearDownWithinDeadlinesAsync(second, podId, id);
        }
        finally
        {
            dirs.Delete();
        }
    }

    [Fact]
    public async Task ARestoringStartCutShortByADaemonKillReadsRunningAfterTheRestartAndStopsWithConmonsExit()
    {
        var dirs = DaemonDirs.Create();
        string archiveDir = Directory.CreateTempSubdirectory("crishim-interrupted-start-").FullName;
        try
        {
            string podId, id;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                PodSandboxConfig podConfig;
                string original;
                (podConfig, podId, original) = await StartSleeperAsync(first, "interrupted-restore");
                string archive = Path.Combine(archiveDir, "sleeper.tar");
                await first.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = archive, Timeout = 120 });
                await first.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = original, Timeout = 0 });
                await first.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = original });
                id = (await first.Runtime.CreateContainerAsync(new CreateContainerRequest
                {
                    PodSandboxId = podId, Config = Cri.Container("restored", archive), SandboxConfig = podConfig,
                })).ContainerId;

                // Killed once conmon is launched (its pid file is its first act) and CRIU is restoring under it.
                var starting = first.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }).ResponseAsync;
                string conmonPidFile = Path.Combine(dirs.Root, "containers", id, "bundle", "conmon.pid");
                await Cri.WaitUntilAsync(() => Task.FromResult(File.Exists(conmonPidFile) || starting.IsCompleted), TimeSpan.FromSeconds(60), "conmon to restore");
                await first.KillAsync();
                await Assert.ThrowsAsync<RpcException>(() => starting);
            }
            // The kill came mid-start: what the dead daemon left says a start was under way.
            var left = JsonDocument.Parse(File.ReadAllText(Path.Combine(dirs.Root, "containers", id, "record.json"))).RootElement;
            Assert.Equal((int)ContainerState.ContainerCreated, left.GetProperty("State").GetInt32());
            Assert.NotEqual(0, left.GetProperty("StartingAtNanos").GetInt64());

            await using var second = await Daemon.StartAsync(dirs);
            await Cri.WaitUntilAsync(async () => (await second.StatusAsync(id)).State == ContainerState.ContainerRunning, TimeSpan.FromSeconds(60),
                "the interrupted start to be settled");
            var state = RuntimeState(second, "runc", id);
            Assert.Equal("running", state.GetProperty("status").GetString());
            Assert.Equal(state.GetProperty("pid").GetInt32(), await NodeFaults.InitPidAsync(second, id));
            Assert.Equal(0, (await second.ExecAsync(id, "true")).ExitCode);

            // Its conmon outlived the daemon and still reports the exit: the stop signal's, 128 + SIGTERM.
            await second.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 10 }, deadline: TeardownDeadline().AddSeconds(10));
            var status = await second.StatusAsync(id);
            Assert.Equal((ContainerState.ContainerExited, 143), (status.State, status.ExitCode));
            await second.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }, deadline: TeardownDeadline());
            await second.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
        }
        finally
        {
            Directory.Delete(archiveDir, recursive: true);
            dirs.Delete();
        }
    }

    private static string Bundle(DaemonDirs dirs, string id) => Path.Combine(dirs.Root, "containers", id, "bundle");

    /// <summary>The CRIU images a restored container keeps until its restore succeeded.</summary>
    private static string RestoreImages(DaemonDirs dirs, string id) => Path.Combine(dirs.Root, "containers", id, "checkpoint");

    private static async Task<bool> RuntimeKnowsAsync(Daemon daemon, string id) =>
        (await HostCommand.RunAsync("runc", ["--root", Path.Combine(daemon.Dirs.RunRoot, "runc"), "state", id])).ExitCode == 0;

    /// <summary>
    /// Checkpoints a sleeper, creates one restored container per name from its archive, starts each with its restore
    /// held by the runtime (conmon and `runc restore` running, the container not made yet), and kills the daemon -9
    /// while they are held.
    /// </summary>
    private async Task<(string PodId, string[] Ids)> KillTheDaemonDuringHeldRestoresAsync(DaemonDirs dirs, HeldRestores held, string archiveDir,
        params string[] names)
    {
        await using var first = await Daemon.StartAsync(dirs, held.ConfigToml);
        await first.PullAsync(Busybox);
        var podConfig = Cri.Pod("held-restore");
        string podId = await first.RunPodAsync(podConfig);
        // Each copy of the checkpoint has its process's pid again: in a pid namespace of its own, as CRIU restores it.
        // (There the shell is pid 1, which SIGTERM ends only through a handler.)
        Runtime.V1.ContainerConfig OwnPidNamespace(Runtime.V1.ContainerConfig config)
        {
            config.Linux.SecurityContext.NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Container };
            return config;
        }
        string original = await first.StartContainerAsync(podId, podConfig, OwnPidNamespace(Cri.Container("sleeper", Busybox, "sh", "-c",
            "trap 'exit 143' TERM; while true; do sleep 1; done")));
        string archive = Path.Combine(archiveDir, "sleeper.tar");
        await first.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = archive, Timeout = 120 });
        await first.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = original, Timeout = 0 });
        await first.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = original });
        var ids = new List<string>();
        foreach (string name in names)
        {
            string id = (await first.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = podId, Config = OwnPidNamespace(Cri.Container(name, archive)), SandboxConfig = podConfig,
            })).ContainerId;
            held.Hold(id);
            ids.Add(id);
        }
        var starts = ids.Select(id => first.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }).ResponseAsync).ToList();
        foreach (string id in ids)
        {
            await Cri.WaitUntilAsync(() => Task.FromResult(NodeFaults.ProcessesNaming(Bundle(dirs, id)).Values.Any(args => args.Contains("restore"))),
                TimeSpan.FromSeconds(60), "the runtime's restore under conmon");
        }
        await first.KillAsync();
        foreach (var start in starts) await Assert.ThrowsAsync<RpcException>(() => start);
        return (podId, [.. ids]);
    }

    [Fact]
    public async Task StopWaitsForARestoreThatOutlivedTheDaemonOrKillsItPastItsTimeoutAndRemoveKillsItLeavingNothingRunning()
    {
        var dirs = DaemonDirs.Create();
        using var held = new HeldRestores();
        string archiveDir = Directory.CreateTempSubdirectory("crishim-held-restore-").FullName;
        try
        {
            var (podId, ids) = await KillTheDaemonDuringHeldRestoresAsync(dirs, held, archiveDir, "waited", "abandoned", "removed");
            string waited = ids[0], abandoned = ids[1], removed = ids[2];
            await using var second = await Daemon.StartAsync(dirs, held.ConfigToml);

            // Within its grace period, the stop waits for the restore, then stops the restored process: conmon reports its exit.
            var stopping = second.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = waited, Timeout = 30 }).ResponseAsync;
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.False(stopping.IsCompleted, "StopContainer returned while the restore was still under way");
            held.Release(waited);
            await stopping;
            var status = await second.StatusAsync(waited);
            Assert.Equal((ContainerState.ContainerExited, 143), (status.State, status.ExitCode));
            Assert.False(Directory.Exists(RestoreImages(dirs, waited)), "the CRIU images outlived the restore");

            // A restore still under way past the grace period is killed, with conmon, and the exit says why.
            await second.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = abandoned, Timeout = 2 }, deadline: TeardownDeadline());
            status = await second.StatusAsync(abandoned);
            Console.WriteLine($"abandoned: {status.ExitCode} {status.Reason} {status.Message}");
            Assert.Equal((ContainerState.ContainerExited, 255, "Error"), (status.State, status.ExitCode, status.Reason));
            Assert.Contains("restore", status.Message);

            // RemoveContainer does not wait: the restore goes with the container.
            await second.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = removed }, deadline: TeardownDeadline());
            Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => second.StatusAsync(removed))).StatusCode);

            foreach (string id in ids)
            {
                held.Release(id);
                Assert.Empty(NodeFaults.ProcessesNaming(Bundle(dirs, id)));
            }
            Assert.False(await RuntimeKnowsAsync(second, abandoned));
            Assert.False(await RuntimeKnowsAsync(second, removed));
            foreach (string id in new[] { waited, abandoned }) await second.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id }, deadline: TeardownDeadline());
            await second.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
        }
        finally
        {
            Directory.Delete(archiveDir, recursive: true);
            dirs.Delete();
        }
    }

    [Fact]
    public async Task AConmonKilledWithTheDaemonMidRestoreLeavesItsRestoredProcessRunningUnmonitoredOrTheRestoreUndoneForARetry()
    {
        var dirs = DaemonDirs.Create();
        using var held = new HeldRestores();
        string archiveDir = Directory.CreateTempSubdirectory("crishim-held-restore-").FullName;
        try
        {
            var (podId, ids) = await KillTheDaemonDuringHeldRestoresAsync(dirs, held, archiveDir, "orphaned", "restored");
            string orphaned = ids[0], restored = ids[1];
            // One restore finishes with the daemon down, then its conmon is killed; the other's conmon is killed mid-restore,
            // leaving `runc restore` orphaned.
            held.Release(restored);
            string runcRoot = Path.Combine(dirs.RunRoot, "runc");
            await Cri.WaitUntilAsync(async () => (await HostCommand.RunAsync("runc", ["--root", runcRoot, "state", restored])).Output.Contains("\"running\""),
                TimeSpan.FromSeconds(60), "the released restore to finish");
            foreach (string id in ids)
            {
                int conmon = NodeFaults.ConmonPid(dirs, id);
                NodeFaults.Kill(conmon);
                await Cri.WaitUntilAsync(() => Task.FromResult(!NodeFaults.IsRunning(conmon)), TimeSpan.FromSeconds(10), "conmon to die");
            }
            Assert.NotEmpty(NodeFaults.ProcessesNaming(Bundle(dirs, orphaned)));

            await using var second = await Daemon.StartAsync(dirs, held.ConfigToml);

            // The orphaned restore is killed and undone: CREATED, nothing of it left, and it can be started again.
            await Cri.WaitUntilAsync(() => Task.FromResult(NodeFaults.ProcessesNaming(Bundle(dirs, orphaned)).Count == 0), TimeSpan.FromSeconds(20),
                "the orphaned restore to be killed");
            Assert.Equal(ContainerState.ContainerCreated, (await second.StatusAsync(orphaned)).State);
            Assert.False(await RuntimeKnowsAsync(second, orphaned));
            Assert.True(Directory.Exists(RestoreImages(dirs, orphaned)), "the CRIU images of a restore that did not happen are gone");

            // The restored process outlived its conmon: RUNNING as the runtime says (once the start-up scan, which settles
            // the interrupted starts one after another, reaches it), and the stop records conmon's death.
            await Cri.WaitUntilAsync(async () => (await second.StatusAsync(restored)).State == ContainerState.ContainerRunning, TimeSpan.FromSeconds(20),
                "the finished restore to be settled RUNNING");
            var state = RuntimeState(second, "runc", restored);
            int init = state.GetProperty("pid").GetInt32();
            Assert.Equal(init, await NodeFaults.InitPidAsync(second, restored));
            await second.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = restored, Timeout = 1 }, deadline: TeardownDeadline());
            var status = await second.StatusAsync(restored);
            Assert.Equal((ContainerState.ContainerExited, 255), (status.State, status.ExitCode));
            Assert.Contains("conmon died", status.Message);
            Assert.False(NodeFaults.IsRunning(init), "StopContainer left the restored process running");
            Assert.False(Directory.Exists(RestoreImages(dirs, restored)), "the CRIU images outlived the restore");

            held.Release(orphaned);
            await second.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = orphaned });
            Assert.Equal(ContainerState.ContainerRunning, (await second.StatusAsync(orphaned)).State);
            Assert.Equal(0, (await second.ExecAsync(orphaned, "true")).ExitCode);
            Assert.False(Directory.Exists(RestoreImages(dirs, orphaned)), "the CRIU images outlived the restore");

            await second.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: TeardownDeadline());
            Assert.Empty((await second.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        }
        finally
        {
            Directory.Delete(archiveDir, recursive: true);
            dirs.Delete();
        }
    }

    /// <summary>
    /// What a daemon killed mid-checkpoint leaves in its state root: the checkpoint's work dir (0700, as the
    /// daemon makes it) with its in-flight marker naming <paramref name="handler"/>.
    /// </summary>
    private static string LeaveInterruptedCheckpoint(DaemonDirs dirs, string id, string handler)
    {
        string workDir = Path.Combine(dirs.Root, "checkpoints", $"{id}-interrupted");
        Directory.CreateDirectory(workDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(workDir, "inflight.json"),
            $$"""{"containerId":"{{id}}","runtimeHandler":"{{handler}}","tempArchive":"{{Path.Combine(dirs.Base, "archive.tar.tmp")}}","deadline":"{{DateTimeOffset.UtcNow.AddMinutes(10):O}}"}""");
        return workDir;
    }
}
