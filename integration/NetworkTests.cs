using System.Net;
using System.Net.Sockets;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// Pod networking with the real CNI plugins (/usr/lib/cni). Every daemon has its own bridge and /24
/// (<see cref="TestNetwork"/>); traffic only goes to 127.0.0.0/8 and those subnets.
/// </summary>
[Collection(RegistryCollection.Name)]
public class NetworkTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private const string HttpdScript = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

    private static HttpClient HostClient() => new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };

    private static async Task<PodSandboxStatus> PodStatusAsync(Daemon daemon, string podId) =>
        (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status;

    private static async Task<RuntimeCondition> NetworkReadyAsync(Daemon daemon) =>
        (await daemon.Runtime.StatusAsync(new StatusRequest())).Status.Conditions.Single(c => c.Type == "NetworkReady");

    private static async Task<string> GetAsync(string url, TimeSpan limit)
    {
        using var client = HostClient();
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            try
            {
                return (await client.GetStringAsync(url)).Trim();
            }
            catch (Exception e) when ((e is HttpRequestException or TaskCanceledException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    private static void AssertNothingLeaked(Daemon daemon, TestNetwork network, string networkName = "crishim-it")
    {
        Assert.Empty(network.Leases(networkName));
        Assert.Empty(network.BridgePorts());
        string netnsDir = Path.Combine(daemon.Dirs.RunRoot, "netns");
        Assert.Empty(Directory.Exists(netnsDir) ? Directory.GetFiles(netnsDir) : []);
        string cacheDir = Path.Combine(daemon.Dirs.Root, "cni", "results");
        Assert.Empty(Directory.Exists(cacheDir) ? Directory.GetFiles(cacheDir) : []);
    }

    /// <summary>A daemon whose CNI settings the test writes; the dirs (and bridge) are removed by <c>dirs.Delete()</c>.</summary>
    private static (DaemonDirs Dirs, TestNetwork Network) PrivateDirs()
    {
        var dirs = DaemonDirs.Create();
        return (dirs, TestNetwork.CreateDefault(dirs.Base));
    }

    private static string FakePlugin(DaemonDirs dirs, string name, string onAdd)
    {
        string bin = Path.Combine(dirs.Base, "fakebin");
        Directory.CreateDirectory(bin);
        string path = Path.Combine(bin, name);
        File.WriteAllText(path, $$"""
            #!/bin/sh
            if [ "$CNI_COMMAND" = ADD ]; then
            {{onAdd}}
            fi
            cat > /dev/null
            exit 0

            """);
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return bin;
    }

    [Fact]
    public async Task TwoPodsGetDistinctIpsAndServeEachOtherAndTheHost()
    {
        await using var daemon = await Daemon.StartAsync();
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        Assert.True((await NetworkReadyAsync(daemon)).Status);
        await daemon.PullAsync(Busybox);

        var webConfig = Cri.Pod("web");
        string web = await daemon.RunPodAsync(webConfig);
        var clientConfig = Cri.Pod("client");
        string client = await daemon.RunPodAsync(clientConfig);
        string webIp = (await PodStatusAsync(daemon, web)).Network.Ip;
        string clientIp = (await PodStatusAsync(daemon, client)).Network.Ip;
        Assert.StartsWith(network.SubnetPrefix + ".", webIp);
        Assert.StartsWith(network.SubnetPrefix + ".", clientIp);
        Assert.NotEqual(webIp, clientIp);
        Assert.Empty((await PodStatusAsync(daemon, web)).Network.AdditionalIps);
        Assert.Equal(2, network.BridgePorts().Count);
        Assert.Equal(2, network.Leases().Count);

        await daemon.StartContainerAsync(web, webConfig, Cri.Container("httpd", Busybox, "sh", "-c", HttpdScript));
        string shell = await daemon.StartContainerAsync(client, clientConfig, Cri.Container("shell", Busybox, "sleep", "3600"));
        Assert.Contains($"inet {clientIp}/24", await daemon.ShAsync(shell, "ip -4 -o addr show eth0"));
        Assert.Contains($"default via {network.Gateway}", await daemon.ShAsync(shell, "ip route"));

        Assert.Equal("hello-from-web", await GetAsync($"http://{webIp}/", TimeSpan.FromSeconds(30)));
        Assert.Equal("hello-from-web", await daemon.ShAsync(shell, $"timeout 10 wget -q -O - http://{webIp}/"));

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = web });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = client });
        AssertNothingLeaked(daemon, network);
    }

    [Fact]
    public async Task AHostPortMappingAnswersOnLoopback()
    {
        await using var daemon = await Daemon.StartAsync();
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        await daemon.PullAsync(Busybox);
        int hostPort = FreePort();
        var podConfig = Cri.Pod("mapped");
        podConfig.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = hostPort, HostIp = "127.0.0.1" });
        string pod = await daemon.RunPodAsync(podConfig);
        await daemon.StartContainerAsync(pod, podConfig, Cri.Container("httpd", Busybox, "sh", "-c", HttpdScript));

        Assert.Equal("hello-from-mapped", await GetAsync($"http://127.0.0.1:{hostPort}/", TimeSpan.FromSeconds(30)));
        Assert.Contains($"--dport {hostPort}", TestNetwork.Run("iptables", "-t", "nat", "-S"));

        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        Assert.DoesNotContain($"--dport {hostPort}", TestNetwork.Run("iptables", "-t", "nat", "-S"));
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        AssertNothingLeaked(daemon, network);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task FiftyPodsComeAndGoWithoutLeaks()
    {
        await using var daemon = await Daemon.StartAsync();
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        var ids = new List<string>();
        using var gate = new SemaphoreSlim(8);
        var runs = Enumerable.Range(0, 50).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                return await daemon.RunPodAsync(Cri.Pod($"many-{i}"));
            }
            finally
            {
                gate.Release();
            }
        });
        ids.AddRange(await Task.WhenAll(runs));
        var ips = new List<string>();
        foreach (string id in ids) ips.Add((await PodStatusAsync(daemon, id)).Network.Ip);
        Assert.Equal(50, ips.Distinct().Count());
        Assert.All(ips, ip => Assert.StartsWith(network.SubnetPrefix + ".", ip));
        Assert.Equal(50, network.Leases().Count);
        Assert.Equal(50, network.BridgePorts().Count);

        await Task.WhenAll(ids.Select(async id =>
        {
            await gate.WaitAsync();
            try
            {
                await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
            }
            finally
            {
                gate.Release();
            }
        }));
        Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        AssertNothingLeaked(daemon, network);
    }

    [Fact]
    public async Task NetworkReadyFollowsTheConfigDirectory()
    {
        await using var daemon = await Daemon.StartAsync();
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        Assert.True((await NetworkReadyAsync(daemon)).Status);

        string parked = Path.Combine(daemon.Dirs.Base, "parked.conflist");
        File.Move(network.ConfFile, parked);
        var notReady = await NetworkReadyAsync(daemon);
        Assert.False(notReady.Status);
        Assert.Equal("NetworkPluginNotReady", notReady.Reason);
        Assert.Equal($"no network config found in {network.ConfDir}", notReady.Message);

        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.RunPodAsync(Cri.Pod("no-network")));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains($"no network config found in {network.ConfDir}", e.Status.Detail);
        Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);

        // A host-network pod needs no CNI and still runs.
        var hostConfig = Cri.Pod("host-net");
        hostConfig.Linux.SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } };
        string hostPod = await daemon.RunPodAsync(hostConfig);
        Assert.Equal("", (await PodStatusAsync(daemon, hostPod)).Network.Ip);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = hostPod });

        // A config naming a plugin that is not installed says which and where it was looked for.
        File.WriteAllText(Path.Combine(network.ConfDir, "05-missing.conflist"),
            """{ "cniVersion": "1.0.0", "name": "missing", "plugins": [ { "type": "no-such-plugin" } ] }""");
        var missing = await NetworkReadyAsync(daemon);
        Assert.False(missing.Status);
        Assert.Equal("05-missing.conflist: plugin 'no-such-plugin' not found in /usr/lib/cni, /opt/cni/bin", missing.Message);

        // An invalid one names the file and the problem.
        File.WriteAllText(Path.Combine(network.ConfDir, "01-broken.conf"), "{ not json");
        var invalid = await NetworkReadyAsync(daemon);
        Assert.False(invalid.Status);
        Assert.StartsWith("01-broken.conf: invalid JSON", invalid.Message);

        File.Delete(Path.Combine(network.ConfDir, "01-broken.conf"));
        File.Delete(Path.Combine(network.ConfDir, "05-missing.conflist"));
        File.Move(parked, network.ConfFile);
        Assert.True((await NetworkReadyAsync(daemon)).Status);
        string pod = await daemon.RunPodAsync(Cri.Pod("network-back"));
        Assert.StartsWith(network.SubnetPrefix + ".", (await PodStatusAsync(daemon, pod)).Network.Ip);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        AssertNothingLeaked(daemon, network);
    }

    [Fact]
    public async Task ABrokenConfigFailsRunPodSandboxWithThePluginsMessage()
    {
        await using var daemon = await Daemon.StartAsync();
        var network = TestNetwork.ClaimFor(daemon.Dirs.Base);
        // Valid JSON, so the daemon reports ready; the bridge plugin rejects it.
        File.WriteAllText(network.ConfFile, network.Conflist().Replace("\"hairpinMode\": true", "\"hairpinMode\": true, \"mtu\": \"large\""));
        Assert.True((await NetworkReadyAsync(daemon)).Status);

        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.RunPodAsync(Cri.Pod("broken")));
        Assert.Contains("CNI plugin bridge ADD on network \"crishim-it\" failed", e.Status.Detail);
        Assert.Contains("mtu", e.Status.Detail); // the plugin's own words about the field it cannot decode
        Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        AssertNothingLeaked(daemon, network);
    }

    [Fact]
    public async Task APluginFailingAfterTheBridgeLeavesNoLeaseVethOrNamespace()
    {
        var (dirs, network) = PrivateDirs();
        try
        {
            string bin = FakePlugin(dirs, "refuse", """
                cat > /dev/null
                echo '{"cniVersion":"1.0.0","code":7,"msg":"refuse: this pod is not welcome","details":"by design"}'
                exit 1
                """);
            File.WriteAllText(network.ConfFile, network.Conflist(extraPlugins: ",\n    { \"type\": \"refuse\" }"));
            await using var daemon = await Daemon.StartAsync(dirs,
                $"[cni]\nconf_dir = \"{network.ConfDir}\"\nbin_dirs = [\"{bin}\", \"/usr/lib/cni\"]\n");
            Assert.True((await NetworkReadyAsync(daemon)).Status);

            var e = await Assert.ThrowsAsync<RpcException>(() => daemon.RunPodAsync(Cri.Pod("refused")));
            Assert.Contains("refuse: this pod is not welcome (by design)", e.Status.Detail);
            Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            // The bridge and host-local ran before the failure; DEL undid them.
            Assert.True(Directory.Exists($"/sys/class/net/{network.Bridge}"));
            AssertNothingLeaked(daemon, network);
        }
        finally
        {
            dirs.Delete();
        }
    }

    [Fact]
    public async Task AHangingPluginIsKilledAfterTheTimeout()
    {
        var (dirs, network) = PrivateDirs();
        try
        {
            string bin = FakePlugin(dirs, "hang", "exec sleep 600");
            File.WriteAllText(network.ConfFile, network.Conflist(extraPlugins: ",\n    { \"type\": \"hang\" }"));
            await using var daemon = await Daemon.StartAsync(dirs,
                $"[cni]\nconf_dir = \"{network.ConfDir}\"\nbin_dirs = [\"{bin}\", \"/usr/lib/cni\"]\nplugin_timeout_seconds = 2\n");

            var started = DateTime.UtcNow;
            var e = await Assert.ThrowsAsync<RpcException>(() => daemon.RunPodAsync(Cri.Pod("hung")));
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
            Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
            Assert.Contains("CNI plugin hang ADD on network \"crishim-it\" did not finish within 2 s and was killed", e.Status.Detail);
            Assert.Empty((await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
            AssertNothingLeaked(daemon, network);
        }
        finally
        {
            dirs.Delete();
        }
    }

    [Fact]
    public async Task NetworkingSurvivesADaemonRestartAndIsTornDownByTheNextOne()
    {
        var dirs = DaemonDirs.Create();
        try
        {
            string pod, ip;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                await first.PullAsync(Busybox);
                var podConfig = Cri.Pod("restart");
                pod = await first.RunPodAsync(podConfig);
                ip = (await PodStatusAsync(first, pod)).Network.Ip;
                await first.StartContainerAsync(pod, podConfig, Cri.Container("httpd", Busybox, "sh", "-c", HttpdScript));
                Assert.Equal("hello-from-restart", await GetAsync($"http://{ip}/", TimeSpan.FromSeconds(30)));
                await first.KillAsync();
            }
            var network = TestNetwork.ClaimFor(dirs.Base);
            // The config changes while no daemon runs: teardown uses what ADD used (network "crishim-it",
            // whose host-local leases live under that name), from the cache.
            File.WriteAllText(network.ConfFile, network.Conflist(name: "renamed"));
            await using (var second = await Daemon.StartAsync(dirs))
            {
                Assert.Equal(ip, (await PodStatusAsync(second, pod)).Network.Ip);
                Assert.Equal("hello-from-restart", await GetAsync($"http://{ip}/", TimeSpan.FromSeconds(10)));
                Assert.True((await NetworkReadyAsync(second)).Status);
                await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
                AssertNothingLeaked(second, network);
            }
        }
        finally
        {
            dirs.Delete();
        }
    }
}
