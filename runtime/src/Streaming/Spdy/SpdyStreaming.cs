using System.Threading.Channels;
using CriShim.Runtime.Oci;
using Microsoft.AspNetCore.Http.Features;

namespace CriShim.Runtime.Streaming.Spdy;

/// <summary>The HTTP upgrade to SPDY/3.1 with k8s' X-Stream-Protocol-Version negotiation (httpstream.Handshake).</summary>
internal static class SpdyUpgrade
{
    public const string ProtocolHeader = "X-Stream-Protocol-Version";

    public static bool IsRequested(HttpContext context) =>
        context.Request.Headers.Upgrade.Any(v => v is not null && v.Contains("SPDY/3.1", StringComparison.OrdinalIgnoreCase));

    /// <summary>The first protocol of the client's list the server supports, or null.</summary>
    public static string? Negotiate(HttpContext context, string[] supported)
    {
        var offered = context.Request.Headers[ProtocolHeader]
            .SelectMany(v => (v ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        return offered.FirstOrDefault(supported.Contains);
    }

    public static async Task<SpdyConnection?> AcceptAsync(HttpContext context, string[] supported)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        string? protocol = Negotiate(context, supported);
        if (upgrade is not { IsUpgradableRequest: true } || protocol is null)
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsync($"unable to upgrade: supported {ProtocolHeader} values: {string.Join(", ", supported)}\n");
            return null;
        }
        context.Response.Headers.Connection = "Upgrade";
        context.Response.Headers.Upgrade = "SPDY/3.1";
        context.Response.Headers[ProtocolHeader] = protocol;
        var transport = await upgrade.UpgradeAsync();
        return new SpdyConnection(transport);
    }
}

/// <summary>Exec, attach and port-forward over SPDY, as the kubelet's remotecommand and portforward servers do.</summary>
internal static class SpdyStreaming
{
    private static readonly string[] RemoteCommandProtocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
    private static readonly string[] PortForwardProtocols = ["portforward.k8s.io"];
    private static readonly TimeSpan StreamCreationTimeout = TimeSpan.FromSeconds(30);

    public static async Task ServeRemoteCommandAsync(HttpContext context, StreamingRequest request, StreamingServer server, ILogger logger,
        CancellationToken cancellationToken)
    {
        var connection = await SpdyUpgrade.AcceptAsync(context, RemoteCommandProtocols);
        if (connection is null) return;
        await using var _ = connection;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var readLoop = connection.ReadLoopAsync(session.Token).ContinueWith(_ => session.Cancel(), TaskScheduler.Default);

        var (stdin, stdout, stderr, tty) = StreamingServer.StdioOf(request);
        var wanted = new HashSet<string> { "error" };
        if (stdin) wanted.Add("stdin");
        if (stdout) wanted.Add("stdout");
        if (stderr) wanted.Add("stderr");
        if (tty) wanted.Add("resize");
        var streams = new Dictionary<string, SpdyStream>();
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(session.Token))
        {
            wait.CancelAfter(StreamCreationTimeout);
            try
            {
                while (!wanted.IsSubsetOf(streams.Keys))
                {
                    var stream = await connection.Opened.ReadAsync(wait.Token);
                    string type = stream.Header("streamtype");
                    if (wanted.Contains(type)) streams[type] = stream;
                    else await connection.ResetAsync(stream.Id);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                logger.LogDebug("SPDY client did not open the streams {Streams} in time", string.Join(", ", wanted.Except(streams.Keys)));
                return;
            }
        }

        Channel<TerminalSize>? resizes = null;
        Task resizeLoop = Task.CompletedTask;
        if (streams.TryGetValue("resize", out var resizeStream))
        {
            resizes = Channel.CreateUnbounded<TerminalSize>();
            var input = resizeStream.OpenInput();
            resizeLoop = Task.Run(async () =>
            {
                var decoder = new TerminalSizeDecoder();
                byte[] buffer = new byte[1024];
                try
                {
                    int read;
                    while ((read = await input.ReadAsync(buffer, session.Token)) > 0)
                    {
                        foreach (var size in decoder.Feed(buffer.AsSpan(0, read))) resizes.Writer.TryWrite(size);
                    }
                }
                catch (OperationCanceledException)
                {
                }
            }, CancellationToken.None);
        }
        var remote = new RemoteCommandStreams
        {
            Stdin = streams.TryGetValue("stdin", out var i) ? i.OpenInput() : null,
            Stdout = streams.TryGetValue("stdout", out var o) ? o.Output : null,
            Stderr = streams.TryGetValue("stderr", out var e2) ? e2.Output : null,
            Resizes = resizes?.Reader,
        };
        RemoteCommandResult result;
        try
        {
            result = await server.RunRemoteCommandAsync(request, remote, session.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        finally
        {
            resizes?.Writer.TryComplete();
        }
        try
        {
            foreach (string name in new[] { "stdout", "stderr" })
            {
                if (streams.TryGetValue(name, out var output)) await output.CloseAsync();
            }
            var error = streams["error"];
            await error.Output.WriteAsync(RemoteCommandStatus.V4Json(result, (request as ExecStreamRequest)?.Command), cancellationToken);
            await error.CloseAsync();
            await connection.GoAwayAsync();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        await Task.WhenAny(readLoop, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
        await session.CancelAsync();
        await Task.WhenAny(resizeLoop, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
    }

    public static async Task ServePortForwardAsync(HttpContext context, PortForwardStreamRequest request, StreamingService service, ILogger logger,
        CancellationToken cancellationToken)
    {
        var connection = await SpdyUpgrade.AcceptAsync(context, PortForwardProtocols);
        if (connection is null) return;
        await using var _ = connection;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var readLoop = connection.ReadLoopAsync(session.Token);
        var pending = new Dictionary<string, (SpdyStream? Data, SpdyStream? Error)>();
        var forwards = new List<Task>();
        try
        {
            await foreach (var stream in connection.Opened.ReadAllAsync(session.Token))
            {
                string requestId = stream.Header("requestid");
                if (requestId.Length == 0) requestId = stream.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
                pending.TryGetValue(requestId, out var pair);
                switch (stream.Header("streamtype"))
                {
                    case "data": pair.Data = stream; break;
                    case "error": pair.Error = stream; break;
                    default:
                        await connection.ResetAsync(stream.Id);
                        continue;
                }
                if (pair is { Data: { } data, Error: { } error })
                {
                    pending.Remove(requestId);
                    forwards.Add(ForwardAsync(data, error, request, service, logger, session.Token));
                }
                else
                {
                    pending[requestId] = pair;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        await session.CancelAsync();
        await Task.WhenAll(forwards);
        await readLoop;
    }

    private static async Task ForwardAsync(SpdyStream data, SpdyStream error, PortForwardStreamRequest request, StreamingService service,
        ILogger logger, CancellationToken cancellationToken)
    {
        string portText = data.Header("port");
        try
        {
            if (!int.TryParse(portText, out int port)) throw new InvalidRequestException($"invalid port \"{portText}\"");
            using var target = await service.ConnectPortAsync(request.PodId, port, cancellationToken);
            await PortForwarder.RelayAsync(target, data.OpenInput(), data.Output, () => new ValueTask(data.CloseAsync()), cancellationToken);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ArgumentException or InvalidRequestException or OperationCanceledException
                                      or NotFoundException)
        {
            if (e is not OperationCanceledException)
            {
                logger.LogDebug(e, "port-forward to {Pod}:{Port} failed", request.PodId, portText);
                try
                {
                    await error.Output.WriteAsync(System.Text.Encoding.UTF8.GetBytes(
                        $"error forwarding port {portText} to pod {request.PodId}: {e.Message}"), CancellationToken.None);
                }
                catch (Exception ignored) when (ignored is IOException or ObjectDisposedException)
                {
                }
            }
        }
        finally
        {
            await data.CloseAsync();
            await error.CloseAsync();
        }
    }
}
