using System.Globalization;
using System.Net;
using System.Net.Sockets;
using CriShim.TestImages;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class MetricsTests(RegistryFixture registry)
{
    private const string RuntimeService = "runtime.v1.RuntimeService";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>The TCP ports the process listens on, from its socket fds and /proc/net/tcp{,6}.</summary>
    private static SortedSet<int> ListeningPorts(int pid)
    {
        var inodes = new HashSet<string>();
        foreach (string fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            string? target = new FileInfo(fd).LinkTarget;
            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(target[8..^1]);
        }
        var ports = new SortedSet<int>();
        foreach (string table in new[] { $"/proc/{pid}/net/tcp", $"/proc/{pid}/net/tcp6" })
        {
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // local_address is hex ip:port; state 0A is LISTEN; field 9 is the inode.
                if (fields[3] == "0A" && inodes.Contains(fields[9])) ports.Add(int.Parse(fields[1].Split(':')[1], NumberStyles.HexNumber));
            }
        }
        return ports;
    }

    [Fact]
    public async Task ScrapeShowsRpcsByCodeCheckpointsPullsAndStoreGauges()
    {
        int metricsPort = FreePort(), streamingPort = FreePort();
        await using var daemon = await Daemon.StartAsync(configToml:
            $"[metrics]\naddress = \"127.0.0.1:{metricsPort}\"\n[streaming]\nport = {streamingPort}\n");
        Assert.Equal(new SortedSet<int> { metricsPort, streamingPort }, ListeningPorts(daemon.ProcessId));

        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("metrics");
        string podId = await daemon.RunPodAsync(podConfig);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));
        string dir = Directory.CreateTempSubdirectory("crishim-metrics-").FullName;
        string archive = Path.Combine(dir, "sleeper.tar");
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = archive, Timeout = 120 });
        var notFound = await Assert.ThrowsAsync<RpcException>(() =>
            daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = "no-such-container" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);

        using var http = new HttpClient();
        var response = await http.GetAsync($"http://127.0.0.1:{metricsPort}/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        var metrics = PrometheusText.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal("counter", metrics.Families["crishim_grpc_server_handled_total"].Type);
        Assert.Equal(1, metrics.Value("crishim_grpc_server_handled_total",
            ("grpc_service", RuntimeService), ("grpc_method", "ContainerStatus"), ("grpc_code", "NotFound")));
        Assert.Equal(1, metrics.Value("crishim_grpc_server_handled_total",
            ("grpc_service", RuntimeService), ("grpc_method", "RunPodSandbox"), ("grpc_code", "OK")));
        Assert.Equal(1, metrics.Value("crishim_grpc_server_handled_total",
            ("grpc_service", "runtime.v1.ImageService"), ("grpc_method", "PullImage"), ("grpc_code", "OK")));
        Assert.Equal("histogram", metrics.Families["crishim_grpc_server_handling_seconds"].Type);
        Assert.Equal(1, metrics.Value("crishim_grpc_server_handling_seconds_count", ("grpc_service", RuntimeService), ("grpc_method", "CheckpointContainer")));

        Assert.Equal(1, metrics.Value("crishim_checkpoints_total", ("kind", "container"), ("outcome", "success")));
        Assert.Equal(new FileInfo(archive).Length, metrics.Value("crishim_checkpoint_archive_bytes_sum"));
        Assert.Equal(1, metrics.Value("crishim_checkpoint_frozen_seconds_count"));
        Assert.True(metrics.Value("crishim_checkpoint_duration_seconds_sum") >= metrics.Value("crishim_checkpoint_frozen_seconds_sum"));

        Assert.True(metrics.Value("crishim_image_pull_bytes_total") > 100_000, "busybox's layer is counted");
        Assert.Equal(1, metrics.Value("crishim_image_pull_duration_seconds_count", ("outcome", "success")));

        Assert.Equal(1, metrics.Value("crishim_containers", ("state", "running")));
        Assert.Equal(0, metrics.Value("crishim_containers", ("state", "exited")));
        Assert.Equal(1, metrics.Value("crishim_pod_sandboxes", ("state", "ready")));

        // The metrics listener serves nothing else, and the CRI socket does not serve /metrics.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"http://127.0.0.1:{metricsPort}/runtime.v1.RuntimeService/Version")).StatusCode);
        using var criSocket = new HttpClient(Daemon.UnixSocketHandler(daemon.SocketPath));
        // The socket speaks HTTP/2 only, without TLS: prior knowledge.
        using var metricsOverCri = new HttpRequestMessage(HttpMethod.Get, "http://localhost/metrics")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        Assert.Equal(HttpStatusCode.NotFound, (await criSocket.SendAsync(metricsOverCri)).StatusCode);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        var after = PrometheusText.Parse(await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics"));
        Assert.Equal(0, after.Value("crishim_containers", ("state", "running")));
        Assert.Equal(0, after.Value("crishim_pod_sandboxes", ("state", "ready")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task WithoutAMetricsAddressNothingMoreListens()
    {
        int streamingPort = FreePort();
        await using var daemon = await Daemon.StartAsync(configToml: $"[streaming]\nport = {streamingPort}\n");
        await daemon.Runtime.VersionAsync(new VersionRequest());
        Assert.Equal(new SortedSet<int> { streamingPort }, ListeningPorts(daemon.ProcessId));
    }
}
