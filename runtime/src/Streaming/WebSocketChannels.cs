using System.IO.Pipelines;
using System.Net.WebSockets;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// Kubernetes' channel protocol over one WebSocket (k8s.io/apimachinery wsstream): every binary
/// message starts with a channel byte. Under v5.channel.k8s.io a message [255, n] closes the client's
/// side of channel n. Input channels become pipes; output channels are written as messages.
/// </summary>
public sealed class WebSocketChannels : IAsyncDisposable
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";
    public const string V1 = "channel.k8s.io";
    public const byte CloseChannel = 255;

    /// <summary>
    /// The largest message reassembled from its frames: clients send stdin and port data in chunks of
    /// tens of KiB; a larger message closes the connection (1009, message too big).
    /// </summary>
    public const int MaxMessageBytes = 1024 * 1024;

    private readonly WebSocket _socket;
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly Dictionary<byte, Pipe> _inputs = [];
    private readonly Dictionary<byte, Action<ReadOnlyMemory<byte>>> _handlers = [];
    private readonly CancellationTokenSource _closed = new();

    public WebSocketChannels(WebSocket socket, string protocol)
    {
        _socket = socket;
        Protocol = protocol;
    }

    public string Protocol { get; }
    public bool SupportsClose => Protocol == V5;

    /// <summary>Cancelled when the client goes away (or the connection breaks).</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>A channel the client writes, read here as a stream that ends at the client's close.</summary>
    public Stream Input(byte channel)
    {
        var pipe = new Pipe();
        _inputs[channel] = pipe;
        return pipe.Reader.AsStream();
    }

    /// <summary>A channel the client writes whose messages are handled as they come.</summary>
    public void OnMessage(byte channel, Action<ReadOnlyMemory<byte>> handler) => _handlers[channel] = handler;

    public Stream Output(byte channel) => new SinkStream((data, ct) => new ValueTask(SendAsync(channel, data, ct)));

    public async Task SendAsync(byte channel, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        byte[] frame = new byte[data.Length + 1];
        frame[0] = channel;
        data.Span.CopyTo(frame.AsSpan(1));
        await _send.WaitAsync(cancellationToken);
        try
        {
            await _socket.SendAsync(frame, WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
        }
        finally
        {
            _send.Release();
        }
    }

    /// <summary>Reads messages until the client closes; dispatches them to the input channels.</summary>
    public async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var result = await _socket.ReceiveAsync(buffer, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close) break;
                if (message.Length + result.Count > MaxMessageBytes)
                {
                    await CloseAsync(WebSocketCloseStatus.MessageTooBig, $"message larger than {MaxMessageBytes} bytes");
                    break;
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                var data = message.GetBuffer().AsMemory(0, (int)message.Length);
                if (data.Length > 0) await DispatchAsync(data);
                message.SetLength(0);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
        }
        finally
        {
            foreach (var pipe in _inputs.Values) await pipe.Writer.CompleteAsync();
            _closed.Cancel();
        }
    }

    private async ValueTask DispatchAsync(ReadOnlyMemory<byte> data)
    {
        byte channel = data.Span[0];
        var payload = data[1..];
        if (channel == CloseChannel && SupportsClose)
        {
            if (payload.Length > 0 && _inputs.TryGetValue(payload.Span[0], out var closing)) await closing.Writer.CompleteAsync();
            return;
        }
        if (_inputs.TryGetValue(channel, out var pipe))
        {
            try
            {
                await pipe.Writer.WriteAsync(payload);
            }
            catch (InvalidOperationException)
            {
                // Written after the client closed the channel: dropped, as wsstream does.
            }
        }
        else if (_handlers.TryGetValue(channel, out var handler))
        {
            handler(payload);
        }
    }

    /// <summary>Ends the conversation with a normal close and waits briefly for the client's reply.</summary>
    public Task CloseAsync() => CloseAsync(WebSocketCloseStatus.NormalClosure, null);

    private async Task CloseAsync(WebSocketCloseStatus status, string? description)
    {
        try
        {
            await _send.WaitAsync();
            try
            {
                if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await _socket.CloseOutputAsync(status, description, limit.Token);
                }
            }
            finally
            {
                _send.Release();
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
        }
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        _closed.Dispose();
        _send.Dispose();
        return ValueTask.CompletedTask;
    }
}
