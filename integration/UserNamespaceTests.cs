using System.Text.RegularExpressions;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// Pod user namespaces (KEP-127, `hostUsers: false`) on the real runtimes: the infra process creates the
/// namespace, containers join it, the rootfs is idmapped and the pod's network namespace is owned by it.
/// </summary>
[Collection(RegistryCollection.Name)]
public class UserNamespaceTests(RegistryFixture registry)
{
    private const uint HostId = 200000;
    private const uint Length = 65536;
    // Debian's crun 1.8.1 predates `crun features`; the default runc is make deps' runc 1.3, which idmaps mounts.
    // Debian 12's runc 1.1 cannot, so it stands for a handler without user namespaces.
    private const string OldRunc = "old-runc";
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CheckpointTests.CriuCapableCrun}\"\n"
        + $"[runtime.handlers.{OldRunc}]\npath = \"/usr/bin/runc\"\n";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private static UserNamespace PodMode(uint containerId = 0) => new()
    {
        Mode = NamespaceMode.Pod,
        Uids = { new IDMapping { ContainerId = containerId, HostId = HostId, Length = Length } },
        Gids = { new IDMapping { ContainerId = containerId, HostId = HostId, Length = Length } },
    };

    private static PodSandboxConfig Pod(string name, UserNamespace userns)
    {
        var config = Cri.Pod(name);
        config.Linux.SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { UsernsOptions = userns } };
        return config;
    }

    /// <summary>As the kubelet does: the container's namespace options are the pod's.</summary>
    private Runtime.V1.ContainerConfig Container(PodSandboxConfig pod, string name, params string[] command)
    {
        var config = Cri.Container(name, Busybox, command);
        config.Linux.SecurityContext.NamespaceOptions = pod.Linux.SecurityContext.NamespaceOptions;
        return config;
    }

    /// <summary>
    /// A daemon whose base dir others may traverse, as /var/lib and /run are: the runtime mounts a user-namespaced
    /// pod's rootfs from inside the namespace, and the daemon refuses such pods under a closed (0700 temp) dir.
    /// The caller deletes the dirs.
    /// </summary>
    private static async Task<(Daemon Daemon, DaemonDirs Dirs)> StartAsync()
    {
        var dirs = DaemonDirs.Create();
        File.SetUnixFileMode(dirs.Base, (UnixFileMode)0b111_001_001);
        return (await Daemon.StartAsync(dirs, Config), dirs);
    }

    private static string[] MountsUnder(DaemonDirs dirs) =>
        [.. File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4]).Where(m => m.StartsWith(dirs.Base + "/", StringComparison.Ordinal))];

    private static string Normalize(string idMap) => Regex.Replace(idMap.Trim(), @"\s+", " ");

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task PodModeContainerIsRootInItsNamespaceOwnsItsRootfsAndIsReachable(string handler)
    {
        var (daemon, dirs) = await StartAsync();
        try
        {
            var status = await daemon.Runtime.StatusAsync(new StatusRequest());
            Assert.True(status.RuntimeHandlers.Single(h => h.Name == handler).Features.UserNamespaces);
            await daemon.PullAsync(Busybox);
            var podConfig = Pod($"userns-{handler}", PodMode());
            string podId = await daemon.RunPodAsync(podConfig, handler);
            // A volume as the kubelet passes it: host root's files, idmapped so the pod's root owns them.
            string volume = Directory.CreateDirectory(Path.Combine(dirs.Base, "volume")).FullName;
            File.WriteAllText(Path.Combine(volume, "from-host"), "host data");
            var config = Container(podConfig, "web", "sh", "-c",
                "mkdir -p /www && echo hello-userns > /www/index.html && httpd -p 80 -h /www && exec sleep 3600");
            config.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = volume, UidMappings = { PodMode().Uids }, GidMappings = { PodMode().Gids } });
            config.Mounts.Add(new Mount { ContainerPath = "/image", Image = new ImageSpec { Image = Busybox }, Readonly = true });
            string id = await daemon.StartContainerAsync(podId, podConfig, config);

            Assert.Equal($"0 {HostId} {Length}", Normalize(await daemon.ShAsync(id, "cat /proc/self/uid_map")));
            Assert.Equal($"0 {HostId} {Length}", Normalize(await daemon.ShAsync(id, "cat /proc/self/gid_map")));
            Assert.Equal("0 0", await daemon.ShAsync(id, "echo $(id -u) $(id -g)"));
            // Root owns / of its rootfs, so it can create files there; the host sees them owned by the mapped id.
            Assert.Equal("0 0", await daemon.ShAsync(id, "stat -c '%u %g' /"));
            Assert.Equal("0", await daemon.ShAsync(id, "touch /made-by-root && stat -c %u /made-by-root"));
            var upperFile = new FileInfo(Path.Combine(dirs.Root, "rootfs", id, "upper", "made-by-root"));
            Assert.Equal(HostId.ToString(), TestNetwork.Run("stat", "-c", "%u", upperFile.FullName).Trim());
            // The host sees the container's processes under the mapped uid.
            string containerNet = await daemon.ShAsync(id, "readlink /proc/self/ns/net");
            var sleepers = Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(p => p!.All(char.IsAsciiDigit))
                .Where(p => ReadOrEmpty($"/proc/{p}/cmdline").StartsWith("sleep\u00003600", StringComparison.Ordinal) && LinkOrEmpty($"/proc/{p}/ns/net") == containerNet)
                .ToList();
            Assert.Single(sleepers);
            Assert.Matches($@"(?m)^Uid:\s+{HostId}\s", File.ReadAllText($"/proc/{sleepers[0]}/status"));
            Assert.Equal("0 host data", await daemon.ShAsync(id, "echo $(stat -c %u /data/from-host) $(cat /data/from-host)"));
            // An image volume's layers are idmapped like the rootfs's: the image's root is the pod's root.
            Assert.Equal("0 0", await daemon.ShAsync(id, "stat -c '%u %g' /image/bin/busybox"));
            await daemon.ShAsync(id, "echo from-pod > /data/from-pod");
            Assert.Equal("0", TestNetwork.Run("stat", "-c", "%u", Path.Combine(volume, "from-pod")).Trim());
            // Pod files and /dev/shm work, and sysfs mounts: the network namespace belongs to the pod's user namespace.
            Assert.Contains($"userns-{handler}", await daemon.ShAsync(id, "cat /etc/hosts /etc/hostname"));
            Assert.Equal("shm", await daemon.ShAsync(id, "echo shm > /dev/shm/x && cat /dev/shm/x"));
            // They belong to the container's root, who can edit /etc/hosts as on a host-user pod.
            Assert.Equal("0 0 0 0", await daemon.ShAsync(id, "echo $(stat -c '%u %g' /etc/hosts /dev/shm)"));
            Assert.Contains("10.1.2.3 extra", await daemon.ShAsync(id, "echo '10.1.2.3 extra' >> /etc/hosts && cat /etc/hosts"));
            Assert.Matches("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", await daemon.ShAsync(id, "cat /sys/class/net/eth0/address"));
            string pinned = Path.Combine(daemon.Dirs.RunRoot, "netns", podId);
            Assert.Equal(containerNet, PinnedNetworkNamespace(pinned));

            string ip = (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status.Network.Ip;
            var network = TestNetwork.ClaimFor(dirs.Base);
            Assert.StartsWith(network.SubnetPrefix + ".", ip);
            using (var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) })
            {
                string body = "";
                await Cri.WaitUntilAsync(async () =>
                {
                    try { body = (await client.GetStringAsync($"http://{ip}/")).Trim(); }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
                    return body.Length > 0;
                }, TimeSpan.FromSeconds(20), "the pod's httpd");
                Assert.Equal("hello-userns", body);
            }

            await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
            Assert.False(File.Exists(pinned), "the pinned network namespace outlived StopPodSandbox");
            Assert.Empty(network.BridgePorts());
            Assert.Empty(network.Leases());
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Assert.Empty(MountsUnder(dirs));
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(dirs.Root, "rootfs")));
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    [Fact]
    public async Task ARestartedDaemonTearsAUserNamespacedPodDown()
    {
        var (daemon, dirs) = await StartAsync();
        try
        {
            await daemon.PullAsync(Busybox);
            var podConfig = Pod("userns-restart", PodMode());
            string podId = await daemon.RunPodAsync(podConfig, "crun");
            string id = await daemon.StartContainerAsync(podId, podConfig, Container(podConfig, "sleeper", "sleep", "3600"));
            await daemon.StopAsync();

            await using var restarted = await Daemon.StartAsync(dirs, Config);
            Assert.Equal($"0 {HostId} {Length}", Normalize(await restarted.ShAsync(id, "cat /proc/self/uid_map")));
            await restarted.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Assert.False(File.Exists(Path.Combine(dirs.RunRoot, "netns", podId)));
            Assert.Empty(MountsUnder(dirs));
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    [Fact]
    public async Task NodeModeContainerSharesTheHostUserNamespace()
    {
        var (daemon, dirs) = await StartAsync();
        try
        {
            await daemon.PullAsync(Busybox);
            var podConfig = Pod("userns-node", new UserNamespace { Mode = NamespaceMode.Node });
            string podId = await daemon.RunPodAsync(podConfig);
            string id = await daemon.StartContainerAsync(podId, podConfig, Container(podConfig, "sleeper", "sleep", "3600"));

            Assert.Equal(Normalize(File.ReadAllText("/proc/self/uid_map")), Normalize(await daemon.ShAsync(id, "cat /proc/self/uid_map")));
            Assert.Equal(LinkOrEmpty("/proc/self/ns/user"), await daemon.ShAsync(id, "readlink /proc/self/ns/user"));
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    /// <summary>On runc 1.1, which lacks idmapped mounts: valid POD requests fail for that alone.</summary>
    public static TheoryData<string, string> Invalid => new()
    {
        { "two mappings", "exactly one uid mapping, got 2" },
        { "container id 0 unmapped", "must map container id 0" },
        { "CONTAINER", "mode CONTAINER is not supported" },
        { "TARGET", "mode TARGET is not supported" },
        { "POD", $"runtime handler \"{OldRunc}\" does not support user namespaces" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task UnsupportedRequestsAreInvalidAndLeaveNothingBehind(string request, string message)
    {
        var (daemon, dirs) = await StartAsync();
        try
        {
            var userns = request switch
            {
                "two mappings" => PodMode(),
                "container id 0 unmapped" => PodMode(containerId: 1),
                "CONTAINER" => new UserNamespace { Mode = NamespaceMode.Container },
                "TARGET" => new UserNamespace { Mode = NamespaceMode.Target },
                _ => PodMode(),
            };
            if (request == "two mappings") userns.Uids.Add(new IDMapping { ContainerId = 0, HostId = HostId + Length, Length = Length });
            var status = await daemon.Runtime.StatusAsync(new StatusRequest());
            // runc 1.1 cannot idmap the kubelet's volumes; the unnamed entry is the default handler, runc 1.3.
            Assert.False(status.RuntimeHandlers.Single(h => h.Name == OldRunc).Features.UserNamespaces);
            Assert.True(status.RuntimeHandlers.Single(h => h.Name == "").Features.UserNamespaces);

            var error = await Assert.ThrowsAsync<RpcException>(() => daemon.RunPodAsync(Pod("userns-invalid", userns), OldRunc));

            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains(message, error.Status.Detail);
            Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            string netns = Path.Combine(dirs.RunRoot, "netns");
            Assert.Empty(Directory.Exists(netns) ? Directory.GetFileSystemEntries(netns) : []);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(dirs.Root, "pods")));
            Assert.Empty(MountsUnder(dirs));
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    /// <summary>The "net:[inode]" name of a pinned network namespace, as readlink shows it for a process.</summary>
    private static string PinnedNetworkNamespace(string pinned) => $"net:[{TestNetwork.Run("stat", "-c", "%i", pinned).Trim()}]";

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    private static string LinkOrEmpty(string path)
    {
        try { return new FileInfo(path).LinkTarget ?? ""; }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }
}
