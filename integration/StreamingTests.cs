using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// Exec, Attach and PortForward through the streaming server, driven by a WebSocket client speaking
/// k8s' channel protocols (as client-go does) and by the real crictl when it is installed.
/// </summary>
[Collection(RegistryCollection.Name)]
public class StreamingTests(RegistryFixture registry)
{
    /// <summary>Found on PATH, where <see cref="FactNeedingToolAttribute"/> looks; optional on developer machines.</summary>
    private const string Crictl = "crictl";
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private async Task<(PodDaemon Daemon, string PodId, PodSandboxConfig PodConfig)> StartPodAsync(string name, string handler = "")
    {
        var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod(name);
        string podId = await daemon.RunPodAsync(podConfig, handler);
        return (new PodDaemon(daemon, podId), podId, podConfig);
    }

    /// <summary>The daemon of one test, whose pod (and its conmon processes) goes away with it.</summary>
    private sealed class PodDaemon(Daemon daemon, string podId) : IAsyncDisposable
    {
        public static implicit operator Daemon(PodDaemon holder) => holder.Inner;
        public Daemon Inner { get; } = daemon;

        public async ValueTask DisposeAsync()
        {
            try
            {
                await Inner.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
                await Inner.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
            }
            finally
            {
                await Inner.DisposeAsync();
            }
        }
    }

    private static ExecRequest Exec(string id, bool tty, bool stdin, params string[] command)
    {
        var request = new ExecRequest { ContainerId = id, Tty = tty, Stdin = stdin, Stdout = true, Stderr = !tty };
        request.Cmd.Add(command);
        return request;
    }

    [Theory]
    [InlineData("runc", ChannelClient.V5)]
    [InlineData("crun", ChannelClient.V4)]
    public async Task ExecOverWebSocketSeparatesStreamsAndReportsTheExitCode(string handler, string protocol)
    {
        var (holder, podId, podConfig) = await StartPodAsync($"exec-{handler}", handler);
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));

        var response = await daemon.Runtime.ExecAsync(Exec(id, tty: false, stdin: false, "sh", "-c", "echo out; echo err >&2; exit 3"));
        Assert.Matches(@"^http://127\.0\.0\.1:\d+/exec/[A-Za-z0-9_-]+$", response.Url);
        await using (var client = await ChannelClient.ConnectAsync(response.Url, protocol))
        {
            Assert.Equal(protocol, client.Protocol);
            await client.ReadToEndAsync();
            Assert.Equal("out\n", client.Text(1));
            Assert.Equal("err\n", client.Text(2));
            using var status = JsonDocument.Parse(client.Text(3));
            Assert.Equal("Failure", status.RootElement.GetProperty("status").GetString());
            Assert.Equal("NonZeroExitCode", status.RootElement.GetProperty("reason").GetString());
            var cause = status.RootElement.GetProperty("details").GetProperty("causes")[0];
            Assert.Equal("ExitCode", cause.GetProperty("reason").GetString());
            Assert.Equal("3", cause.GetProperty("message").GetString());
        }

        // The token is single-use.
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(response.Url)).StatusCode);

        var ok = await daemon.Runtime.ExecAsync(Exec(id, tty: false, stdin: false, "echo", "hi"));
        await using (var client = await ChannelClient.ConnectAsync(ok.Url, protocol))
        {
            await client.ReadToEndAsync();
            Assert.Equal("hi\n", client.Text(1));
            Assert.Equal("Success", JsonDocument.Parse(client.Text(3)).RootElement.GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task ExecPassesStdinUntilTheV5CloseSignal()
    {
        var (holder, podId, podConfig) = await StartPodAsync("exec-stdin");
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));

        var response = await daemon.Runtime.ExecAsync(Exec(id, tty: false, stdin: true, "sh", "-c", "tr a-z A-Z; echo done"));
        await using var client = await ChannelClient.ConnectAsync(response.Url, ChannelClient.V5);
        await client.SendAsync(0, "hello streaming\n");
        await client.SendAsync(0, "second line\n");
        await client.SendAsync(ChannelClient.Close, [0]);
        await client.ReadToEndAsync();
        Assert.Equal("HELLO STREAMING\nSECOND LINE\ndone\n", client.Text(1));
        Assert.Equal("Success", JsonDocument.Parse(client.Text(3)).RootElement.GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ExecWithATerminalRunsAnInteractiveShellAndResizes(string handler)
    {
        var (holder, podId, podConfig) = await StartPodAsync($"exec-tty-{handler}", handler);
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("sleeper", Busybox, "sleep", "3600"));

        var response = await daemon.Runtime.ExecAsync(Exec(id, tty: true, stdin: true, "sh"));
        await using var client = await ChannelClient.ConnectAsync(response.Url, ChannelClient.V5);
        await client.SendAsync(4, """{"Width":123,"Height":45}""");
        await Task.Delay(300);
        await client.SendAsync(0, "tty; stty size; echo sum=$((6*7))\n");
        await client.WaitForAsync(1, "sum=42", TimeSpan.FromSeconds(20));
        await client.SendAsync(0, "exit 7\n");
        await client.ReadToEndAsync();
        string output = client.Text(1);
        Assert.Contains("/dev/pts/", output);
        Assert.Contains("45 123", output);
        Assert.Contains("\"7\"", client.Text(3));
        Assert.Equal("", client.Text(2));
    }

    [Fact]
    public async Task AttachStreamsTheContainersOutput()
    {
        var (holder, podId, podConfig) = await StartPodAsync("attach");
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig,
            Cri.Container("ticker", Busybox, "sh", "-c", "i=0; while true; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.2; done"));

        var response = await daemon.Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdout = true, Stderr = true });
        Assert.Contains("/attach/", response.Url);
        await using var client = await ChannelClient.ConnectAsync(response.Url, ChannelClient.V5);
        await client.WaitForAsync(1, "tick", TimeSpan.FromSeconds(20));
        await client.WaitForAsync(2, "tock", TimeSpan.FromSeconds(20));

        // The container's exit ends the attach with a success status.
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 });
        await client.ReadToEndAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("Success", JsonDocument.Parse(client.Text(3)).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task PortForwardReachesAPortOnThePodsLoopback()
    {
        var (holder, podId, podConfig) = await StartPodAsync("forward");
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("web", Busybox, "sh", "-c",
            "mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"));
        await Cri.WaitUntilAsync(async () => (await daemon.ExecAsync(id, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html")).ExitCode == 0,
            TimeSpan.FromSeconds(20), "httpd in the pod");

        var response = await daemon.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = podId, Port = { 8080 } });
        await using (var client = await ChannelClient.ConnectAsync(response.Url + "?port=8080", ChannelClient.V4))
        {
            await client.SendAsync(0, "GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n");
            await client.ReadToEndAsync();
            byte[] data = client.Bytes(0);
            Assert.Equal(new byte[] { 8080 & 0xff, 8080 >> 8 }, data[..2]);
            string http = Encoding.UTF8.GetString(data[2..]);
            Assert.StartsWith("HTTP/1.", http);
            Assert.Contains("hello-from-pod", http);
            Assert.Equal(new byte[] { 8080 & 0xff, 8080 >> 8 }, client.Bytes(1));
        }

        // Nothing listens on the host's 8080 for this: the connection was made in the pod's namespace.
        var closed = await daemon.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = podId, Port = { 8081 } });
        await using (var client = await ChannelClient.ConnectAsync(closed.Url + "?port=8081", ChannelClient.V4))
        {
            await client.ReadToEndAsync();
            Assert.Contains("8081", Encoding.UTF8.GetString(client.Bytes(1)[2..]));
        }
    }

    [Fact]
    public async Task RequestsAreValidated()
    {
        var (holder, podId, podConfig) = await StartPodAsync("validate");
        await using var _ = holder;
        Daemon daemon = holder;
        var created = await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("idle", Busybox, "sleep", "3600"), SandboxConfig = podConfig,
        });
        var notRunning = await Assert.ThrowsAsync<RpcException>(async () =>
            await daemon.Runtime.ExecAsync(Exec(created.ContainerId, tty: false, stdin: false, "true")));
        Assert.Equal(StatusCode.FailedPrecondition, notRunning.StatusCode);
        var unknown = await Assert.ThrowsAsync<RpcException>(async () =>
            await daemon.Runtime.ExecAsync(Exec("nosuchcontainer", tty: false, stdin: false, "true")));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId });
        var both = await Assert.ThrowsAsync<RpcException>(async () =>
            await daemon.Runtime.ExecAsync(new ExecRequest { ContainerId = created.ContainerId, Cmd = { "true" }, Tty = true, Stderr = true }));
        Assert.Equal(StatusCode.InvalidArgument, both.StatusCode);
        var noPod = await Assert.ThrowsAsync<RpcException>(async () =>
            await daemon.Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = "nosuchpod", Port = { 80 } }));
        Assert.Equal(StatusCode.NotFound, noPod.StatusCode);

        using var http = new HttpClient();
        var url = (await daemon.Runtime.ExecAsync(Exec(created.ContainerId, tty: false, stdin: false, "true"))).Url;
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(url[..url.LastIndexOf('/')] + "/not-a-token")).StatusCode);
    }

    [FactNeedingTool(Crictl)]
    public async Task CrictlExecAttachAndPortForwardWork()
    {
        var (holder, podId, podConfig) = await StartPodAsync("crictl");
        await using var _ = holder;
        Daemon daemon = holder;
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("web", Busybox, "sh", "-c",
            "mkdir -p /tmp/www && echo hello-crictl > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"));
        string endpoint = $"unix://{daemon.SocketPath}";

        foreach (string transport in new[] { "websocket", "spdy" })
        {
            var (code, stdout, stderr) = await RunAsync(Crictl, "--runtime-endpoint", endpoint, "exec", "-r", transport, id, "echo", "hi");
            Assert.True(code == 0, $"crictl exec -r {transport}: exit {code}: {stderr}");
            Assert.Equal("hi", stdout.Trim());

            (code, string ignored, stderr) = await RunAsync(Crictl, "--runtime-endpoint", endpoint, "exec", "-r", transport, id, "sh", "-c", "exit 5");
            // crictl reports the command's exit code in its error (and exits 1).
            Assert.True(code != 0 && stderr.Contains("exit code 5"), $"crictl exec -r {transport} exit 5: exit {code}: {stderr}");

            (code, stdout, stderr) = await RunAsync(Crictl, ["--runtime-endpoint", endpoint, "exec", "-i", "-r", transport, id, "cat"], "piped input\n");
            Assert.True(code == 0, $"crictl exec -i -r {transport}: exit {code}: {stderr}");
            Assert.Equal("piped input", stdout.Trim());
        }

        // Port-forward with crictl's default transport (SPDY), then fetch through the local port.
        int localPort = FreePort();
        using var forward = Process.Start(new ProcessStartInfo(Crictl)
        {
            ArgumentList = { "--runtime-endpoint", endpoint, "port-forward", podId, $"{localPort}:8080" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            string? body = null;
            await Cri.WaitUntilAsync(async () =>
            {
                try
                {
                    body = await http.GetStringAsync($"http://127.0.0.1:{localPort}/index.html");
                    return true;
                }
                catch (HttpRequestException)
                {
                    return forward.HasExited;
                }
            }, TimeSpan.FromSeconds(30), "crictl port-forward");
            if (forward.HasExited) Assert.Fail($"crictl port-forward exited: {await forward.StandardError.ReadToEndAsync()}");
            Assert.Equal("hello-crictl", body?.Trim());
            // A second connection through the same forward opens a second stream pair.
            Assert.Equal("hello-crictl", (await http.GetStringAsync($"http://127.0.0.1:{localPort}/index.html")).Trim());
        }
        finally
        {
            if (!forward.HasExited) forward.Kill();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, params string[] args) =>
        await RunAsync(file, args, stdin: null);

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, string[] args, string? stdin)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        if (stdin is not null) await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>A minimal client of k8s' WebSocket channel protocol, as client-go speaks it.</summary>
internal sealed class ChannelClient : IAsyncDisposable
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";
    public const byte Close = 255;

    private readonly ClientWebSocket _socket;
    private readonly Dictionary<byte, MemoryStream> _received = [];
    private readonly Task _receive;
    private readonly SemaphoreSlim _changed = new(0);

    private ChannelClient(ClientWebSocket socket)
    {
        _socket = socket;
        _receive = Task.Run(ReceiveAsync);
    }

    public string? Protocol => _socket.SubProtocol;

    public static async Task<ChannelClient> ConnectAsync(string url, params string[] protocols)
    {
        var socket = new ClientWebSocket();
        foreach (string protocol in protocols) socket.Options.AddSubProtocol(protocol);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await socket.ConnectAsync(new Uri(url.Replace("http://", "ws://")), limit.Token);
        return new ChannelClient(socket);
    }

    public Task SendAsync(byte channel, string text) => SendAsync(channel, Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte channel, byte[] data) =>
        await _socket.SendAsync((byte[])[channel, .. data], WebSocketMessageType.Binary, true, CancellationToken.None);

    private async Task ReceiveAsync()
    {
        byte[] buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                byte[] data = message.ToArray();
                message.SetLength(0);
                if (data.Length == 0) continue;
                lock (_received)
                {
                    if (!_received.TryGetValue(data[0], out var stream)) _received[data[0]] = stream = new MemoryStream();
                    stream.Write(data, 1, data.Length - 1);
                }
                _changed.Release();
            }
        }
        catch (WebSocketException)
        {
        }
        finally
        {
            _changed.Release();
        }
    }

    public byte[] Bytes(byte channel)
    {
        lock (_received) return _received.TryGetValue(channel, out var stream) ? stream.ToArray() : [];
    }

    public string Text(byte channel) => Encoding.UTF8.GetString(Bytes(channel));

    public async Task WaitForAsync(byte channel, string text, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!Text(channel).Contains(text, StringComparison.Ordinal))
        {
            if (_receive.IsCompleted || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no \"{text}\" on channel {channel}; got \"{Text(channel)}\", status \"{Text(3)}\"");
            }
            await _changed.WaitAsync(TimeSpan.FromMilliseconds(200));
        }
    }

    /// <summary>Waits for the server to close the connection.</summary>
    public async Task ReadToEndAsync(TimeSpan? limit = null)
    {
        await _receive.WaitAsync(limit ?? TimeSpan.FromSeconds(30));
        if (_socket.State == WebSocketState.CloseReceived)
        {
            await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, limit.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
            }
        }
        _socket.Dispose();
    }
}
