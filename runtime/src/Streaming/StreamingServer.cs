using System.Net;
using System.Threading.Channels;
using CriShim.Runtime.Config;
using CriShim.Runtime.Oci;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// The HTTP server the Exec/Attach/PortForward URLs point at (kubelet's pkg/cri/streaming): its own
/// Kestrel on streaming.address:streaming.port, HTTP/1.1, serving /exec/, /attach/ and
/// /portforward/ followed by a single-use token, upgraded to WebSocket (v5/v4.channel.k8s.io) or
/// SPDY/3.1. Kept apart from the gRPC host so the CRI stays on the unix socket only.
/// </summary>
public sealed class StreamingServer(
    StreamingConfig config,
    StreamingTokenCache tokens,
    StreamingService service,
    StreamingEndpointAddress address,
    ILogger<StreamingServer> logger) : IHostedService, IAsyncDisposable
{
    private static readonly string[] RemoteCommandProtocols =
        [WebSocketChannels.V5, WebSocketChannels.V4, "v3.channel.k8s.io", "v2.channel.k8s.io", WebSocketChannels.V1];
    private static readonly string[] PortForwardProtocols = [WebSocketChannels.V4, WebSocketChannels.V1];

    private WebApplication? _app;
    private readonly CancellationTokenSource _stopping = new();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, NoSignalLifetime>();
        var ip = ParseAddress(config.Address);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(ip, config.Port, listen => listen.Protocols = HttpProtocols.Http1);
            kestrel.AddServerHeader = false;
        });
        _app = builder.Build();
        _app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) });
        _app.Run(HandleAsync);
        await _app.StartAsync(cancellationToken);

        string bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        int port = new Uri(bound).Port;
        string host = ip.Equals(IPAddress.Any) ? "127.0.0.1" : ip.Equals(IPAddress.IPv6Any) ? "[::1]"
            : ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip.ToString();
        address.Set($"http://{host}:{port}");
        logger.LogInformation("streaming server (exec, attach, port-forward) on http://{Host}:{Port}", host, port);
    }

    private static IPAddress ParseAddress(string text) =>
        text.Length == 0 ? IPAddress.Loopback
        : IPAddress.TryParse(text.Trim('[', ']'), out var ip) ? ip
        : text == "localhost" ? IPAddress.Loopback
        : throw new ArgumentException($"streaming.address \"{text}\" is not an IP address");

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        string[] segments = (context.Request.Path.Value ?? "").Trim('/').Split('/');
        if (segments.Length != 2 || segments[0] is not ("exec" or "attach" or "portforward"))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var request = tokens.Consume(segments[1]);
        bool matches = (segments[0], request) switch
        {
            ("exec", ExecStreamRequest) or ("attach", AttachStreamRequest) or ("portforward", PortForwardStreamRequest) => true,
            _ => false,
        };
        if (!matches)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            await context.Response.WriteAsync($"unknown or expired {segments[0]} token\n");
            return;
        }
        using var aborted = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            if (context.WebSockets.IsWebSocketRequest)
            {
                await (request switch
                {
                    PortForwardStreamRequest forward => ServePortForwardWebSocketAsync(context, forward, aborted.Token),
                    _ => ServeRemoteCommandWebSocketAsync(context, request!, aborted.Token),
                });
            }
            else if (Spdy.SpdyUpgrade.IsRequested(context))
            {
                await (request switch
                {
                    PortForwardStreamRequest forward => Spdy.SpdyStreaming.ServePortForwardAsync(context, forward, service, logger, aborted.Token),
                    _ => Spdy.SpdyStreaming.ServeRemoteCommandAsync(context, request!, this, logger, aborted.Token),
                });
            }
            else
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsync("expected a WebSocket or SPDY/3.1 upgrade\n");
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            logger.LogDebug(e, "streaming connection ended");
        }
    }

    /// <summary>Runs an exec or attach against transport-independent streams.</summary>
    internal Task<RemoteCommandResult> RunRemoteCommandAsync(StreamingRequest request, RemoteCommandStreams streams, CancellationToken cancellationToken) =>
        request switch
        {
            ExecStreamRequest exec => service.ExecAsync(exec, streams, cancellationToken),
            AttachStreamRequest attach => service.AttachAsync(attach, streams, cancellationToken),
            _ => Task.FromResult(RemoteCommandResult.Failed("not a remote command")),
        };

    internal static (bool Stdin, bool Stdout, bool Stderr, bool Tty) StdioOf(StreamingRequest request) => request switch
    {
        ExecStreamRequest e => (e.Stdin, e.Stdout, e.Stderr && !e.Tty, e.Tty),
        AttachStreamRequest a => (a.Stdin, a.Stdout, a.Stderr && !a.Tty, a.Tty),
        _ => (false, false, false, false),
    };

    private async Task ServeRemoteCommandWebSocketAsync(HttpContext context, StreamingRequest request, CancellationToken cancellationToken)
    {
        string? protocol = Negotiate(context.WebSockets.WebSocketRequestedProtocols, RemoteCommandProtocols);
        if (protocol is null && context.WebSockets.WebSocketRequestedProtocols.Count > 0)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync($"supported protocols: {string.Join(", ", RemoteCommandProtocols)}\n");
            return;
        }
        var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = protocol });
        await using var channels = new WebSocketChannels(socket, protocol ?? "");
        var (stdin, stdout, stderr, tty) = StdioOf(request);
        Channel<TerminalSize>? resizes = null;
        if (tty)
        {
            resizes = Channel.CreateUnbounded<TerminalSize>();
            var decoder = new TerminalSizeDecoder();
            channels.OnMessage(4, data =>
            {
                foreach (var size in decoder.Feed(data.Span)) resizes.Writer.TryWrite(size);
            });
        }
        var streams = new RemoteCommandStreams
        {
            Stdin = stdin ? channels.Input(0) : null,
            Stdout = stdout ? channels.Output(1) : null,
            Stderr = stderr ? channels.Output(2) : null,
            Resizes = resizes?.Reader,
        };
        var receive = channels.ReceiveLoopAsync(cancellationToken);
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, channels.Closed);
        RemoteCommandResult result;
        try
        {
            // An attach lasts while the client stays; an exec's process is killed when the client leaves.
            result = await RunRemoteCommandAsync(request, streams, session.Token);
        }
        catch (OperationCanceledException) when (channels.Closed.IsCancellationRequested)
        {
            return;
        }
        finally
        {
            resizes?.Writer.TryComplete();
        }
        byte[]? status = protocol is WebSocketChannels.V5 or WebSocketChannels.V4
            ? RemoteCommandStatus.V4Json(result, (request as ExecStreamRequest)?.Command)
            : RemoteCommandStatus.LegacyText(result);
        try
        {
            if (status is not null) await channels.SendAsync(3, status, cancellationToken);
        }
        catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException)
        {
        }
        await channels.CloseAsync();
        await Task.WhenAny(receive, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None));
    }

    private async Task ServePortForwardWebSocketAsync(HttpContext context, PortForwardStreamRequest request, CancellationToken cancellationToken)
    {
        var ports = new List<int>();
        foreach (string? value in context.Request.Query["port"])
        {
            if (!int.TryParse(value, out int port) || port is <= 0 or > 65535)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsync($"invalid port \"{value}\"\n");
                return;
            }
            ports.Add(port);
        }
        if (ports.Count == 0) ports.AddRange(request.Ports);
        if (ports.Count == 0)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("query parameter \"port\" is required\n");
            return;
        }
        string? protocol = Negotiate(context.WebSockets.WebSocketRequestedProtocols, PortForwardProtocols);
        var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = protocol });
        await using var channels = new WebSocketChannels(socket, protocol ?? "");
        var pairs = ports.Select((port, i) => (Port: port, Data: (byte)(2 * i), Error: (byte)(2 * i + 1))).ToList();
        var inputs = pairs.Select(p => channels.Input(p.Data)).ToList();
        var receive = channels.ReceiveLoopAsync(cancellationToken);
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, channels.Closed);
        // Each channel of a pair opens with the port, little-endian, so the client can tell them apart.
        foreach (var pair in pairs)
        {
            byte[] prefix = [(byte)(pair.Port & 0xff), (byte)(pair.Port >> 8)];
            await channels.SendAsync(pair.Data, prefix, cancellationToken);
            await channels.SendAsync(pair.Error, prefix, cancellationToken);
        }
        await Task.WhenAll(pairs.Select(async (pair, i) =>
        {
            try
            {
                using var target = await service.ConnectPortAsync(request.PodId, pair.Port, session.Token);
                await PortForwarder.RelayAsync(target, inputs[i], channels.Output(pair.Data), () => ValueTask.CompletedTask, session.Token);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ArgumentException or InvalidRequestException
                                          or NotFoundException)
            {
                logger.LogDebug(e, "port-forward to {Pod}:{Port} failed", request.PodId, pair.Port);
                try
                {
                    await channels.SendAsync(pair.Error, System.Text.Encoding.UTF8.GetBytes(
                        $"error forwarding port {pair.Port} to pod {request.PodId}: {e.Message}"), cancellationToken);
                }
                catch (Exception) when (session.IsCancellationRequested)
                {
                }
            }
        }));
        await channels.CloseAsync();
        await Task.WhenAny(receive, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None));
    }

    private static string? Negotiate(IList<string> requested, string[] supported)
    {
        var offered = requested.SelectMany(p => p.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList();
        return supported.FirstOrDefault(offered.Contains);
    }

    /// <summary>The daemon's own host owns the process lifetime and signals; this inner host must not.</summary>
    private sealed class NoSignalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
