using System.Text.RegularExpressions;
using CriShim.TestImages;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class ContainerLifecycleTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task APodWithTwoContainersRunsExecsLogsStopsAndIsRemoved(string handler)
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod($"two-{handler}");
        string podId = await daemon.RunPodAsync(podConfig, handler);

        string talker = await daemon.StartContainerAsync(podId, podConfig,
            Cri.Container("talker", Busybox, "sh", "-c", "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.1; done"));
        string sleeper = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));

        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(talker)).State);
        Assert.Equal("hello", await daemon.ShAsync(sleeper, "echo hello"));
        // Both containers share the pod's network and IPC namespaces through the infra process.
        Assert.Equal(await daemon.ShAsync(talker, "readlink /proc/self/ns/net"), await daemon.ShAsync(sleeper, "readlink /proc/self/ns/net"));
        Assert.Equal(await daemon.ShAsync(talker, "readlink /proc/self/ns/ipc"), await daemon.ShAsync(sleeper, "readlink /proc/self/ns/ipc"));
        Assert.Equal($"two-{handler}", await daemon.ShAsync(sleeper, "hostname"));

        string logPath = Path.Combine(podConfig.LogDirectory, "talker.log");
        await Cri.WaitUntilAsync(() => Task.FromResult(File.Exists(logPath) && File.ReadAllLines(logPath).Length >= 6), TimeSpan.FromSeconds(30), "log lines");
        var lines = File.ReadAllLines(logPath);
        Assert.Matches(new Regex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F line 0$"), lines.First(l => l.Contains(" stdout ")));
        Assert.Contains(lines, l => Regex.IsMatch(l, @" stderr F err \d+$"));

        // The kubelet rotates by renaming the log, then expects the new file to exist when the call returns.
        File.Move(logPath, logPath + ".1");
        await daemon.Runtime.ReopenContainerLogAsync(new ReopenContainerLogRequest { ContainerId = talker });
        Assert.True(File.Exists(logPath), "ReopenContainerLog returned before conmon created the new log");
        await Cri.WaitUntilAsync(() => Task.FromResult(File.ReadAllLines(logPath).Length >= 2), TimeSpan.FromSeconds(30), "lines in the reopened log");

        var listed = await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = podId } });
        Assert.Equal(2, listed.Containers.Count);

        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = talker, Timeout = 10 });
        var stopped = await daemon.StatusAsync(talker);
        Assert.Equal(ContainerState.ContainerExited, stopped.State);
        Assert.NotEqual(0, stopped.FinishedAt);

        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        Assert.Equal(ContainerState.ContainerExited, (await daemon.StatusAsync(sleeper)).State);
        var podStatus = await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId });
        Assert.Equal(PodSandboxState.SandboxNotready, podStatus.Status.State);
        // Stop is idempotent.
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.False(File.Exists(Path.Combine(daemon.Dirs.RunRoot, "netns", podId)));
        // Remove of an unknown pod succeeds, as the CRI demands.
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ContainerConfigIsObservedFromInside()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("features");
        podConfig.DnsConfig = new DNSConfig { Servers = { "10.0.0.53" }, Searches = { "svc.local" }, Options = { "ndots:2" } };
        string podId = await daemon.RunPodAsync(podConfig);

        string hostDir = Directory.CreateTempSubdirectory("crishim-mount-").FullName;
        // Readable by the container's non-root user.
        File.SetUnixFileMode(hostDir, (UnixFileMode)0b111_101_101);
        File.WriteAllText(Path.Combine(hostDir, "from-host"), "host data");
        var config = Cri.Container("features", Busybox, "sleep", "3600");
        config.WorkingDir = "/tmp";
        config.Envs.Add(new KeyValue { Key = "GREETING", Value = Cri.Bytes("hi there") });
        config.Mounts.Add(new Mount { ContainerPath = "/host", HostPath = hostDir, Readonly = true });
        var security = config.Linux.SecurityContext;
        security.RunAsUser = new Int64Value { Value = 1234 };
        security.RunAsGroup = new Int64Value { Value = 5678 };
        security.SupplementalGroups.Add(4242);
        security.ReadonlyRootfs = true;
        security.NoNewPrivs = true;
        security.Capabilities = new Capability { DropCapabilities = { "ALL" }, AddCapabilities = { "NET_BIND_SERVICE" } };
        security.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault };
        config.Linux.Resources.MemoryLimitInBytes = 64 << 20;
        config.Linux.Resources.CpuShares = 512;
        string id = await daemon.StartContainerAsync(podId, podConfig, config);

        Assert.Equal("1234", await daemon.ShAsync(id, "id -u"));
        Assert.Equal("5678", await daemon.ShAsync(id, "id -g"));
        Assert.Contains("4242", await daemon.ShAsync(id, "id -G"));
        // ContainerStatus.user reports the identity the process holds, groups as `id -G` lists them.
        var user = (await daemon.StatusAsync(id)).User.Linux;
        Assert.Equal((1234L, 5678L), (user.Uid, user.Gid));
        Assert.Equal((await daemon.ShAsync(id, "id -G")).Split(' ').Select(long.Parse).Order(), user.SupplementalGroups.Order());
        Assert.Equal("/tmp", await daemon.ShAsync(id, "pwd"));
        Assert.Equal("hi there", await daemon.ShAsync(id, "echo $GREETING"));
        Assert.Equal("host data", await daemon.ShAsync(id, "cat /host/from-host"));
        Assert.NotEqual(0, (await daemon.ExecAsync(id, "touch", "/host/new")).ExitCode);
        Assert.NotEqual(0, (await daemon.ExecAsync(id, "touch", "/rootfs-write")).ExitCode);
        // Only CAP_NET_BIND_SERVICE (bit 10) is in the bounding set.
        Assert.Equal("CapBnd:\t0000000000000400", await daemon.ShAsync(id, "grep CapBnd /proc/self/status"));
        Assert.Equal("NoNewPrivs:\t1", await daemon.ShAsync(id, "grep NoNewPrivs /proc/self/status"));
        Assert.Equal("Seccomp:\t2", await daemon.ShAsync(id, "grep '^Seccomp:' /proc/self/status"));
        Assert.Equal((64 << 20).ToString(), await daemon.ShAsync(id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"));
        Assert.Equal("512", await daemon.ShAsync(id, "cat /sys/fs/cgroup/cpu/cpu.shares"));
        string resolv = await daemon.ShAsync(id, "cat /etc/resolv.conf");
        Assert.Contains("nameserver 10.0.0.53", resolv);
        Assert.Contains("search svc.local", resolv);
        Assert.Contains("options ndots:2", resolv);
        Assert.Equal("features", await daemon.ShAsync(id, "cat /etc/hostname"));

        // UpdateContainerResources reaches the live cgroup and the status.
        await daemon.Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
        {
            ContainerId = id,
            Linux = new LinuxContainerResources { MemoryLimitInBytes = 128 << 20, CpuShares = 256 },
        });
        Assert.Equal((128 << 20).ToString(), await daemon.ShAsync(id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"));
        Assert.Equal(128 << 20, (await daemon.StatusAsync(id)).Resources.Linux.MemoryLimitInBytes);

        var verbose = await daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = id, Verbose = true });
        Assert.Contains("\"pid\":", verbose.Info["info"]);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(hostDir, true);
    }

    [Fact]
    public async Task ImageUserAndEntrypointAreUsed()
    {
        await using var daemon = await Daemon.StartAsync();
        string userImage = registry.Reference(TestImageNames.Username);
        await daemon.PullAsync(userImage);
        var podConfig = Cri.Pod("image-user");
        string podId = await daemon.RunPodAsync(podConfig);
        var config = Cri.Container("www", userImage);
        config.Args.Add(["sleep", "3600"]);
        string id = await daemon.StartContainerAsync(podId, podConfig, config);
        Assert.Equal("33", await daemon.ShAsync(id, "id -u"));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ATerminalContainerWithStdinGetsAPseudoTerminalFromConmon()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("tty");
        string podId = await daemon.RunPodAsync(podConfig);
        var config = Cri.Container("shell", Busybox, "sh");
        config.Tty = true;
        config.Stdin = true;
        string id = await daemon.StartContainerAsync(podId, podConfig, config);
        // An interactive sh with a terminal on stdin waits for input instead of exiting.
        await Task.Delay(500);
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        Assert.Contains("0", (await daemon.ShAsync(id, "ls /dev/pts")).Split());
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ExitCodesAndReasons()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("exits");
        string podId = await daemon.RunPodAsync(podConfig);

        var ok = await daemon.WaitForExitAsync(await daemon.StartContainerAsync(podId, podConfig, Cri.Container("ok", Busybox, "true")));
        Assert.Equal((0, "Completed"), (ok.ExitCode, ok.Reason));
        var failed = await daemon.WaitForExitAsync(await daemon.StartContainerAsync(podId, podConfig, Cri.Container("fail", Busybox, "sh", "-c", "exit 3")));
        Assert.Equal((3, "Error"), (failed.ExitCode, failed.Reason));

        var hog = Cri.Container("hog", Busybox, "sh", "-c", "tail /dev/zero");
        hog.Linux.Resources.MemoryLimitInBytes = 16 << 20;
        hog.Linux.Resources.MemorySwapLimitInBytes = 16 << 20;
        var oom = await daemon.WaitForExitAsync(await daemon.StartContainerAsync(podId, podConfig, hog));
        Assert.Equal("OOMKilled", oom.Reason);
        Assert.Equal(137, oom.ExitCode);
        // conmon writes its oom marker in its working directory: the bundle, never the daemon's cwd.
        Assert.False(File.Exists(Path.Combine(daemon.Dirs.Base, "oom")), "conmon left an oom file in the daemon's working directory");
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task ContainersSurviveADaemonKillAndExitsAreFoundAfterRestart()
    {
        var dirs = DaemonDirs.Create();
        string podId, runner, quitter;
        await using (var first = await Daemon.StartAsync(dirs))
        {
            await first.PullAsync(Busybox);
            var podConfig = Cri.Pod("survivor");
            podId = await first.RunPodAsync(podConfig);
            runner = await first.StartContainerAsync(podId, podConfig, Cri.Container("runner", Busybox, "sleep", "3600"));
            quitter = await first.StartContainerAsync(podId, podConfig, Cri.Container("quitter", Busybox, "sh", "-c", "sleep 3; exit 7"));
            await first.KillAsync();
        }
        // quitter exits while no daemon runs; conmon records it.
        await Task.Delay(TimeSpan.FromSeconds(5));
        await using (var second = await Daemon.StartAsync(dirs))
        {
            var pods = await second.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest());
            Assert.Equal(PodSandboxState.SandboxReady, Assert.Single(pods.Items).State);
            Assert.Equal(ContainerState.ContainerRunning, (await second.StatusAsync(runner)).State);
            Assert.Equal("alive", await second.ShAsync(runner, "echo alive"));
            var exited = await second.StatusAsync(quitter);
            Assert.Equal(ContainerState.ContainerExited, exited.State);
            Assert.Equal(7, exited.ExitCode);
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        dirs.Delete();
    }

    [Fact]
    public async Task ExecSyncTimeoutKillsTheCommand()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("exec-timeout");
        string podId = await daemon.RunPodAsync(podConfig);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("c", Busybox, "sleep", "3600"));
        var request = new ExecSyncRequest { ContainerId = id, Timeout = 1, Cmd = { "sleep", "42" } };
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.ExecSyncAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        // Not even a zombie: the container's own sleep is the only one left (a zombie keeps its comm).
        Assert.Equal("1", await daemon.ShAsync(id, "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$'"));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task DebugContainerSeesItsTargetsProcesses()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("debug-target");
        string podId = await daemon.RunPodAsync(podConfig);
        string app = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("app", Busybox, "sleep", "3601"));

        Runtime.V1.ContainerConfig Debugger(string name, string targetId)
        {
            var config = Cri.Container(name, Busybox, "sleep", "3602");
            config.Linux.SecurityContext.NamespaceOptions = new NamespaceOption { Pid = NamespaceMode.Target, TargetId = targetId };
            return config;
        }
        // As kubectl debug --target=app: one pid namespace with the target, so its sleep is visible.
        string debugger = await daemon.StartContainerAsync(podId, podConfig, Debugger("debugger", app));
        Assert.Contains("sleep 3601", await daemon.ShAsync(debugger, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"));
        Assert.Equal(await daemon.ShAsync(app, "readlink /proc/self/ns/pid"), await daemon.ShAsync(debugger, "readlink /proc/self/ns/pid"));

        async Task<StatusCode> CreateCode(Runtime.V1.ContainerConfig config) => (await Assert.ThrowsAsync<RpcException>(() =>
            daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = config, SandboxConfig = podConfig }).ResponseAsync)).StatusCode;
        Assert.Equal(StatusCode.NotFound, await CreateCode(Debugger("no-target", "0123456789ab")));
        var otherPodConfig = Cri.Pod("debug-other");
        string otherPod = await daemon.RunPodAsync(otherPodConfig);
        string stranger = await daemon.StartContainerAsync(otherPod, otherPodConfig, Cri.Container("stranger", Busybox, "sleep", "3603"));
        Assert.Equal(StatusCode.InvalidArgument, await CreateCode(Debugger("cross-pod", stranger)));
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = app });
        Assert.Equal(StatusCode.FailedPrecondition, await CreateCode(Debugger("stopped-target", app)));
        Assert.Equal(2, (await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = podId } })).Containers.Count);

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = otherPod });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task RecursiveReadOnlyMountsCoverSubmounts()
    {
        await using var daemon = await Daemon.StartAsync();
        var status = await daemon.Runtime.StatusAsync(new StatusRequest());
        // runc 1.1 knows "rro"; the answer comes from `runc features`, not from a table.
        Assert.True(status.RuntimeHandlers.Single(h => h.Name == "runc").Features.RecursiveReadOnlyMounts);
        Assert.True(status.RuntimeHandlers.Single(h => h.Name == "").Features.RecursiveReadOnlyMounts);

        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("rro");
        string podId = await daemon.RunPodAsync(podConfig);
        string hostDir = Directory.CreateTempSubdirectory("crishim-rro-").FullName;
        string submount = Path.Combine(hostDir, "tmpfs");
        Directory.CreateDirectory(submount);
        HostCommand.Output("mount", "-t", "tmpfs", "tmpfs", submount);
        try
        {
            Runtime.V1.ContainerConfig WithMount(string name, bool recursive)
            {
                var config = Cri.Container(name, Busybox, "sleep", "3600");
                config.Mounts.Add(new Mount { ContainerPath = "/mnt", HostPath = hostDir, Readonly = true, RecursiveReadOnly = recursive });
                return config;
            }
            string plain = await daemon.StartContainerAsync(podId, podConfig, WithMount("plain", recursive: false));
            string recursive = await daemon.StartContainerAsync(podId, podConfig, WithMount("recursive", recursive: true));

            // A plain read-only bind leaves the submount writable; rro reaches it too.
            Assert.Equal(0, (await daemon.ExecAsync(plain, "touch", "/mnt/tmpfs/file")).ExitCode);
            var refused = await daemon.ExecAsync(recursive, "touch", "/mnt/tmpfs/other");
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("Read-only file system", refused.Stderr.ToStringUtf8());

            async Task<StatusCode> CreateCode(Mount mount)
            {
                var config = Cri.Container("bad-rro", Busybox, "true");
                config.Mounts.Add(mount);
                var e = await Assert.ThrowsAsync<RpcException>(() =>
                    daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = config, SandboxConfig = podConfig }).ResponseAsync);
                return e.StatusCode;
            }
            Assert.Equal(StatusCode.InvalidArgument, await CreateCode(new Mount { ContainerPath = "/mnt", HostPath = hostDir, RecursiveReadOnly = true }));
            Assert.Equal(StatusCode.InvalidArgument, await CreateCode(new Mount
            {
                ContainerPath = "/mnt", HostPath = hostDir, Readonly = true, RecursiveReadOnly = true,
                Propagation = MountPropagation.PropagationHostToContainer,
            }));
        }
        finally
        {
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            HostCommand.Output("umount", submount);
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public async Task BadInputGetsTheRightCodeAndLeavesNothingBehind()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("errors");
        string podId = await daemon.RunPodAsync(podConfig);

        async Task<StatusCode> CodeOf(Func<Task> call) => (await Assert.ThrowsAsync<RpcException>(call)).StatusCode;
        Assert.Equal(StatusCode.NotFound, await CodeOf(() => daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = "nope" }).ResponseAsync));
        Assert.Equal(StatusCode.NotFound, await CodeOf(() => daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = "nope" }).ResponseAsync));
        Assert.Equal(StatusCode.NotFound, await CodeOf(() => daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = "nope" }).ResponseAsync));
        // Stop and remove are idempotent: an unknown container is already stopped and gone.
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = "nope" });
        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "nope" });
        Assert.Equal(StatusCode.AlreadyExists, await CodeOf(() => daemon.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = podConfig }).ResponseAsync));
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = Cri.Pod("h"), RuntimeHandler = "kata" }).ResponseAsync));
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = new PodSandboxConfig() }).ResponseAsync));

        var relative = Cri.Container("relative", Busybox, "true");
        relative.Mounts.Add(new Mount { ContainerPath = "/x", HostPath = "relative/path" });
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = relative }).ResponseAsync));
        var escaping = Cri.Container("escaping", Busybox, "true");
        escaping.Mounts.Add(new Mount { ContainerPath = "/x/../../etc", HostPath = "/tmp" });
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = escaping }).ResponseAsync));
        var missingImage = Cri.Container("missing", registry.Reference(TestImageNames.Zstd), "true");
        Assert.Equal(StatusCode.NotFound, await CodeOf(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = missingImage }).ResponseAsync));
        var groupWithoutUser = Cri.Container("group-only", Busybox, "true");
        groupWithoutUser.Linux.SecurityContext = new LinuxContainerSecurityContext { RunAsGroup = new Int64Value { Value = 7 } };
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = groupWithoutUser }).ResponseAsync));
        var negativeMemory = Cri.Container("negative", Busybox, "true");
        negativeMemory.Linux.Resources.MemoryLimitInBytes = -5;
        Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = negativeMemory }).ResponseAsync));

        // Nothing half-created: no container record, no rootfs, no runtime state.
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Empty(Directory.Exists(Path.Combine(daemon.Dirs.Root, "containers")) ? Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "containers")) : []);

        string once = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("once", Busybox, "sleep", "3600"));
        Assert.Equal(StatusCode.FailedPrecondition, await CodeOf(() => daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = once }).ResponseAsync));
        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = once });
        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = once });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }
}
