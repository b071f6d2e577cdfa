using System.Text.Json;
using CriShim.TestImages;
using Google.Protobuf;

namespace CriShim.Integration;

/// <summary>
/// The README's quick start as `make run` sets it up: scripts/dev-config.sh's config and network, then the
/// pod and container of examples/ (the files the README shows) run, exec and log. Only the bridge and
/// subnet are this test's own (so it can run beside `make run` and other tests) and the image comes from
/// the local registry.
/// </summary>
[Collection(RegistryCollection.Name)]
public class QuickStartTests(RegistryFixture registry)
{
    private const string DefaultSocket = "/run/crishim/crishim.sock";

    [Fact]
    public async Task TheMakeRunConfigRunsTheExamplePodAndContainer()
    {
        string root = Daemon.RepositoryRoot();
        var dirs = DaemonDirs.Create();
        try
        {
            var network = TestNetwork.ClaimFor(dirs.Base);
            // The generated files land where the harness keeps a test network's (cni/net.d, cni/ipam).
            string devDir = dirs.Base;
            (await HostCommand.RunAsync("env", [$"CRISHIM_DEV_BRIDGE={network.Bridge}", $"CRISHIM_DEV_SUBNET={network.Subnet}",
                "bash", Path.Combine(root, "scripts", "dev-config.sh"), devDir])).EnsureSuccess();

            // crictl talks to the socket the default config serves, for both services.
            Assert.Contains($"socket = \"{DefaultSocket}\"", HostCommand.Output(Daemon.Binary, "config", "default"));
            var crictl = File.ReadAllLines(Path.Combine(devDir, "crictl.yaml"));
            Assert.Contains($"runtime-endpoint: unix://{DefaultSocket}", crictl);
            Assert.Contains($"image-endpoint: unix://{DefaultSocket}", crictl);

            // The pod network is the generated one, and nothing else.
            string toml = File.ReadAllText(Path.Combine(devDir, "crishim.toml"));
            Assert.Contains($"conf_dir = \"{network.ConfDir}\"", toml);
            Assert.Equal(new[] { "10-crishim-dev.conflist" }, Directory.GetFiles(network.ConfDir).Select(f => Path.GetFileName(f)).ToArray());

            // The daemon's own socket and state dirs are overridden by the harness's flags; the network is the generated one.
            string confDir = network.ConfDir;
            await using var daemon = await Daemon.StartAsync(dirs, toml);
            var status = await daemon.Runtime.StatusAsync(new StatusRequest { Verbose = true });
            var networkReady = status.Status.Conditions.Single(c => c.Type == "NetworkReady");
            Assert.True(networkReady.Status, networkReady.Message);
            using (var config = JsonDocument.Parse(status.Info["config"]))
            {
                Assert.Equal(confDir, config.RootElement.GetProperty("cni").GetProperty("conf_dir").GetString());
            }

            string image = registry.Reference(TestImageNames.Busybox);
            await daemon.PullAsync(image);
            var podConfig = JsonParser.Default.Parse<PodSandboxConfig>(File.ReadAllText(Path.Combine(root, "examples", "pod.json")));
            podConfig.LogDirectory = Directory.CreateDirectory(Path.Combine(dirs.Base, "logs")).FullName;
            var containerConfig = JsonParser.Default.Parse<Runtime.V1.ContainerConfig>(File.ReadAllText(Path.Combine(root, "examples", "container.json")));
            containerConfig.Image.Image = image;

            string podId = await daemon.RunPodAsync(podConfig);
            var pod = (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status;
            Assert.StartsWith(network.SubnetPrefix + ".", pod.Network.Ip);
            Assert.Equal(new[] { pod.Network.Ip }, network.Leases("crishim-dev").ToArray());
            string containerId = await daemon.StartContainerAsync(podId, podConfig, containerConfig);
            Assert.Equal("quickstart", await daemon.ShAsync(containerId, "hostname"));
            string logPath = (await daemon.StatusAsync(containerId)).LogPath;
            await Cri.WaitUntilAsync(() => Task.FromResult(File.Exists(logPath) && File.ReadAllText(logPath).Contains(" stdout F hello from crishim")),
                TimeSpan.FromSeconds(30), "the container's greeting in its log");

            await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            Assert.Empty(network.Leases("crishim-dev"));
        }
        finally
        {
            dirs.Delete();
        }
    }
}
