using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using CriShim.NativeInterop;
using CriShim.Runtime.Streaming;
using CriShim.Runtime.Streaming.Spdy;

namespace CriShim.Runtime.Tests.Streaming;

/// <summary>A client cannot make a streaming connection hold more than its caps: the connection ends instead.</summary>
public class StreamingLimitsTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    /// <summary>Two ends of a loopback TCP connection.</summary>
    private static async Task<(Stream Server, Stream Client)> ConnectedPairAsync()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var client = new TcpClient();
            var accepted = listener.AcceptTcpClientAsync();
            await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            return ((await accepted).GetStream(), client.GetStream());
        }
        finally
        {
            listener.Stop();
        }
    }

    private static byte[] SynStream(ZlibDeflater deflater, uint streamId, byte[] headerBlock)
    {
        byte[] compressed = deflater.Deflate(headerBlock);
        byte[] frame = new byte[8 + 10 + compressed.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, 0x8003);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), 1);
        int length = 10 + compressed.Length;
        (frame[5], frame[6], frame[7]) = ((byte)(length >> 16), (byte)(length >> 8), (byte)length);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), streamId);
        compressed.CopyTo(frame, 18);
        return frame;
    }

    /// <summary>A SPDY header block with one header (lengths under 256).</summary>
    private static byte[] HeaderBlock(string name, string value)
    {
        byte[] n = Encoding.ASCII.GetBytes(name), v = Encoding.ASCII.GetBytes(value);
        return [0, 0, 0, 1, 0, 0, 0, (byte)n.Length, .. n, 0, 0, 0, (byte)v.Length, .. v];
    }

    [Fact]
    public async Task AZlibBombHeaderBlockEndsTheSpdyConnection()
    {
        var (server, client) = await ConnectedPairAsync();
        await using var _ = client;
        await using var connection = new SpdyConnection(server);
        var readLoop = connection.ReadLoopAsync(CancellationToken.None);
        using var deflater = new ZlibDeflater(SpdyDictionary.Bytes);

        await client.WriteAsync(SynStream(deflater, 1, HeaderBlock("streamtype", "error")));
        var first = await connection.Opened.ReadAsync().AsTask().WaitAsync(HangGuard);
        Assert.Equal("error", first.Header("streamtype"));

        // 16 MiB of zeros after a header count of 0: a few KiB on the wire.
        byte[] bomb = new byte[16 * 1024 * 1024];
        byte[] frame = SynStream(deflater, 3, bomb);
        Assert.True(frame.Length < 64 * 1024);
        await client.WriteAsync(frame);

        await readLoop.WaitAsync(HangGuard);
        Assert.False(await connection.Opened.WaitToReadAsync().AsTask().WaitAsync(HangGuard), "a stream was opened after the bomb");
    }

    /// <summary>The read loop ends on its own, without an exception, and never opened a stream.</summary>
    private static async Task AssertSessionEndsWithNoStream(SpdyConnection connection, Task readLoop)
    {
        await readLoop.WaitAsync(HangGuard);
        Assert.False(await connection.Opened.WaitToReadAsync().AsTask().WaitAsync(HangGuard), "a stream was opened");
    }

    [Theory]
    // One pair whose name claims 200 bytes; 2 follow.
    [InlineData(new byte[] { 0, 0, 0, 1, 0, 0, 0, 200, (byte)'a', (byte)'b' })]
    // One pair whose name length is -2 as an int32.
    [InlineData(new byte[] { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, (byte)'a', (byte)'b', 0, 0, 0, 1, (byte)'c' })]
    // A well-formed pair under a count of int.MaxValue pairs.
    [InlineData(new byte[] { 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1, (byte)'a', 0, 0, 0, 1, (byte)'b' })]
    // A valid name whose value length runs past the block.
    [InlineData(new byte[] { 0, 0, 0, 1, 0, 0, 0, 1, (byte)'a', 0x00, 0x10, 0, 0, (byte)'b' })]
    public async Task AMalformedHeaderBlockEndsTheSpdySessionWithNoStream(byte[] headerBlock)
    {
        var (server, client) = await ConnectedPairAsync();
        await using var _ = client;
        await using var connection = new SpdyConnection(server);
        var readLoop = connection.ReadLoopAsync(CancellationToken.None);
        using var deflater = new ZlibDeflater(SpdyDictionary.Bytes);

        await client.WriteAsync(SynStream(deflater, 1, headerBlock));

        await AssertSessionEndsWithNoStream(connection, readLoop);
    }

    [Fact]
    public async Task AFrameOverTheCapEndsTheSpdySessionBeforeItsPayloadArrives()
    {
        var (server, client) = await ConnectedPairAsync();
        await using var _ = client;
        await using var connection = new SpdyConnection(server);
        var readLoop = connection.ReadLoopAsync(CancellationToken.None);

        // A data frame header on stream 1 claiming the wire's largest length; no payload follows and the client stays connected.
        await client.WriteAsync(new byte[] { 0, 0, 0, 1, 0, 0xff, 0xff, 0xff });

        await AssertSessionEndsWithNoStream(connection, readLoop);
    }

    [Fact]
    public async Task ASynStreamTooShortForItsFieldsEndsTheSpdySession()
    {
        var (server, client) = await ConnectedPairAsync();
        await using var _ = client;
        await using var connection = new SpdyConnection(server);
        var readLoop = connection.ReadLoopAsync(CancellationToken.None);

        // A SYN_STREAM control frame of 2 bytes: no room for its stream id.
        await client.WriteAsync(new byte[] { 0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0 });

        await AssertSessionEndsWithNoStream(connection, readLoop);
    }

    [Fact]
    public async Task AWebSocketMessageOverTheCapClosesTheConnection()
    {
        var (serverStream, clientStream) = await ConnectedPairAsync();
        using var client = WebSocket.CreateFromStream(clientStream, new WebSocketCreationOptions { IsServer = false });
        await using var channels = new WebSocketChannels(WebSocket.CreateFromStream(serverStream, new WebSocketCreationOptions { IsServer = true }), WebSocketChannels.V5);
        var stdin = channels.Input(0);
        var receive = channels.ReceiveLoopAsync(CancellationToken.None);

        // Stdin channel 0, sent in 64 KiB frames of one message that never ends before the cap.
        byte[] chunk = new byte[64 * 1024];
        var sending = Task.Run(async () =>
        {
            try
            {
                for (int sent = 0; sent <= WebSocketChannels.MaxMessageBytes; sent += chunk.Length)
                {
                    await client.SendAsync(chunk, WebSocketMessageType.Binary, endOfMessage: false, CancellationToken.None);
                }
            }
            catch (Exception e) when (e is WebSocketException or IOException)
            {
                // The server closed the connection while we were still sending.
            }
        });

        await receive.WaitAsync(HangGuard);
        Assert.True(channels.Closed.IsCancellationRequested);
        var answer = await client.ReceiveAsync(new byte[1024], CancellationToken.None).WaitAsync(HangGuard);
        Assert.Equal(WebSocketMessageType.Close, answer.MessageType);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, client.CloseStatus);
        // Nothing of the oversized message reached the container's stdin, which has ended.
        Assert.Equal(0, await stdin.ReadAsync(new byte[16]).AsTask().WaitAsync(HangGuard));
        await sending.WaitAsync(HangGuard);
    }
}
