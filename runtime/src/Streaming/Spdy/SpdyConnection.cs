using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using System.Threading.Channels;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Streaming.Spdy;

/// <summary>One stream the client opened: its SYN_STREAM headers, its data as a stream, and our half to write.</summary>
internal sealed class SpdyStream(SpdyConnection connection, uint id, IReadOnlyDictionary<string, string> headers)
{
    private readonly Pipe _incoming = new();
    private int _closed;

    public uint Id { get; } = id;
    public IReadOnlyDictionary<string, string> Headers { get; } = headers;
    public string Header(string name) => Headers.TryGetValue(name, out var value) ? value : "";

    public Stream Output => new SinkStream((data, ct) => new ValueTask(connection.SendDataAsync(Id, data, fin: false, ct)));

    internal PipeWriter IncomingWriter => _incoming.Writer;

    /// <summary>The client's data, ending at its FIN (or a reset).</summary>
    public Stream OpenInput() => _incoming.Reader.AsStream();

    /// <summary>Half-closes our side with an empty FIN data frame.</summary>
    public async Task CloseAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 1) return;
        try
        {
            await connection.SendDataAsync(Id, ReadOnlyMemory<byte>.Empty, fin: true, CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }
}

/// <summary>
/// The server side of a SPDY/3.1 session as moby/spdystream speaks it (client-go's SPDY transport):
/// control and data frames, zlib-compressed header blocks with the SPDY dictionary, every client
/// stream answered with a SYN_REPLY. spdystream does no flow control, so neither does this.
/// </summary>
internal sealed class SpdyConnection : IAsyncDisposable
{
    private const ushort Version = 3;
    private const ushort SynStream = 1, SynReply = 2, RstStream = 3, Settings = 4, Ping = 6, GoAway = 7, HeadersFrame = 8, WindowUpdate = 9;
    private const byte FlagFin = 0x01;
    /// <summary>A client's headers are a few hundred bytes; a block inflating past this is a zlib bomb and ends the connection.</summary>
    internal const int MaxHeaderBlockBytes = 256 * 1024;
    /// <summary>
    /// The largest frame payload read (the wire allows 16 MiB). client-go writes data in io.Copy's 32 KiB chunks and
    /// a compressed header block is far under <see cref="MaxHeaderBlockBytes"/>; a longer frame ends the connection.
    /// </summary>
    internal const int MaxFramePayloadBytes = 1024 * 1024;

    private readonly Stream _transport;
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly ZlibInflater _inflater = new(SpdyDictionary.Bytes);
    private readonly ZlibDeflater _deflater = new(SpdyDictionary.Bytes);
    private readonly Dictionary<uint, SpdyStream> _streams = [];
    private readonly Channel<SpdyStream> _opened = Channel.CreateUnbounded<SpdyStream>();

    public SpdyConnection(Stream transport) => _transport = transport;

    /// <summary>Streams as the client opens them; completes when the connection ends.</summary>
    public ChannelReader<SpdyStream> Opened => _opened.Reader;

    public async Task ReadLoopAsync(CancellationToken cancellationToken)
    {
        byte[] header = new byte[8];
        try
        {
            while (true)
            {
                if (!await ReadExactlyAsync(header, cancellationToken)) break;
                int length = (header[5] << 16) | (header[6] << 8) | header[7];
                if (length > MaxFramePayloadBytes) throw Malformed($"a frame of {length} bytes is over the {MaxFramePayloadBytes} byte cap");
                byte flags = header[4];
                byte[] payload = new byte[length];
                if (length > 0 && !await ReadExactlyAsync(payload, cancellationToken)) break;
                if ((header[0] & 0x80) != 0)
                {
                    ushort type = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
                    if (!await HandleControlAsync(type, flags, payload, cancellationToken)) break;
                }
                else
                {
                    uint streamId = BinaryPrimitives.ReadUInt32BigEndian(header) & 0x7fffffff;
                    SpdyStream? stream;
                    lock (_streams) _streams.TryGetValue(streamId, out stream);
                    if (stream is null) continue;
                    if (payload.Length > 0)
                    {
                        try
                        {
                            await stream.IncomingWriter.WriteAsync(payload, cancellationToken);
                        }
                        catch (InvalidOperationException)
                        {
                        }
                    }
                    if ((flags & FlagFin) != 0) await stream.IncomingWriter.CompleteAsync();
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidDataException)
        {
        }
        finally
        {
            List<SpdyStream> all;
            lock (_streams) all = [.. _streams.Values];
            foreach (var stream in all) await stream.IncomingWriter.CompleteAsync();
            _opened.Writer.TryComplete();
        }
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        int offset = 0;
        while (offset < buffer.Length)
        {
            int read = await _transport.ReadAsync(buffer.AsMemory(offset), cancellationToken);
            if (read == 0) return false;
            offset += read;
        }
        return true;
    }

    private async Task<bool> HandleControlAsync(ushort type, byte flags, byte[] payload, CancellationToken cancellationToken)
    {
        switch (type)
        {
            case SynStream:
            {
                RequireLength(payload, 10, "SYN_STREAM");
                uint id = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                var headers = DecodeHeaders(payload.AsSpan(10));
                var stream = new SpdyStream(this, id, headers);
                lock (_streams) _streams[id] = stream;
                await SendControlAsync(SynReply, 0, [.. U32(id), .. EncodeHeaders([])], cancellationToken);
                if ((flags & FlagFin) != 0) await stream.IncomingWriter.CompleteAsync();
                _opened.Writer.TryWrite(stream);
                return true;
            }
            case RstStream:
            {
                RequireLength(payload, 4, "RST_STREAM");
                uint id = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                SpdyStream? stream;
                lock (_streams) _streams.Remove(id, out stream);
                if (stream is not null) await stream.IncomingWriter.CompleteAsync();
                return true;
            }
            case HeadersFrame:
            case SynReply:
                // Inflated only to keep the shared zlib stream in step.
                RequireLength(payload, 4, type == SynReply ? "SYN_REPLY" : "HEADERS");
                DecodeHeaders(payload.AsSpan(4));
                return true;
            case Ping:
                await SendControlAsync(Ping, 0, payload, cancellationToken);
                return true;
            case GoAway:
                return false;
            case Settings:
            case WindowUpdate:
            default:
                return true;
        }
    }

    /// <summary>
    /// Parses an inflated name/value block: a pair count, then per pair a length-prefixed name and value.
    /// Every count and length is the client's, so each is checked against what remains of the block.
    /// </summary>
    private Dictionary<string, string> DecodeHeaders(ReadOnlySpan<byte> compressed)
    {
        byte[] block = _inflater.Inflate(compressed, MaxHeaderBlockBytes);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (block.Length < 4) return headers;
        int count = BinaryPrimitives.ReadInt32BigEndian(block);
        int offset = 4;
        // Each pair takes at least its two 4-byte lengths.
        if (count < 0 || count > (block.Length - offset) / 8) throw Malformed($"a header block claims {count} pairs in {block.Length} bytes");
        for (int i = 0; i < count; i++)
        {
            string name = Encoding.UTF8.GetString(LengthPrefixed(block, ref offset));
            // Several values of one name are NUL-separated; the first is enough here.
            string value = Encoding.UTF8.GetString(LengthPrefixed(block, ref offset)).Split('\0')[0];
            headers[name] = value;
        }
        return headers;
    }

    /// <summary>The 32-bit length-prefixed bytes at <paramref name="offset"/>, which moves past them.</summary>
    private static ReadOnlySpan<byte> LengthPrefixed(byte[] block, ref int offset)
    {
        if (block.Length - offset < 4) throw Malformed("a header block ends inside a length");
        int length = BinaryPrimitives.ReadInt32BigEndian(block.AsSpan(offset));
        offset += 4;
        if (length < 0 || length > block.Length - offset) throw Malformed($"a header length of {length} runs past its block");
        var bytes = block.AsSpan(offset, length);
        offset += length;
        return bytes;
    }

    private static void RequireLength(byte[] payload, int minimum, string frame)
    {
        if (payload.Length < minimum) throw Malformed($"a {frame} frame of {payload.Length} bytes is shorter than {minimum}");
    }

    /// <summary>Malformed client input; the read loop ends the connection on it as on a zlib bomb.</summary>
    private static InvalidDataException Malformed(string message) => new($"malformed SPDY frame: {message}");

    private byte[] EncodeHeaders(IReadOnlyList<(string Name, string Value)> headers)
    {
        var block = new MemoryStream();
        block.Write(U32((uint)headers.Count));
        foreach (var (name, value) in headers)
        {
            byte[] n = Encoding.UTF8.GetBytes(name.ToLowerInvariant());
            byte[] v = Encoding.UTF8.GetBytes(value);
            block.Write(U32((uint)n.Length));
            block.Write(n);
            block.Write(U32((uint)v.Length));
            block.Write(v);
        }
        lock (_deflater) return _deflater.Deflate(block.ToArray());
    }

    private static byte[] U32(uint value)
    {
        byte[] bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    private async Task SendControlAsync(ushort type, byte flags, byte[] payload, CancellationToken cancellationToken)
    {
        byte[] frame = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)(0x8000 | Version));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), type);
        WriteFlagsAndLength(frame, flags, payload.Length);
        payload.CopyTo(frame, 8);
        await WriteFrameAsync(frame, cancellationToken);
    }

    public async Task SendDataAsync(uint streamId, ReadOnlyMemory<byte> data, bool fin, CancellationToken cancellationToken)
    {
        byte[] frame = new byte[8 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, streamId & 0x7fffffff);
        WriteFlagsAndLength(frame, fin ? FlagFin : (byte)0, data.Length);
        data.Span.CopyTo(frame.AsSpan(8));
        await WriteFrameAsync(frame, cancellationToken);
    }

    private static void WriteFlagsAndLength(byte[] frame, byte flags, int length)
    {
        frame[4] = flags;
        frame[5] = (byte)(length >> 16);
        frame[6] = (byte)(length >> 8);
        frame[7] = (byte)length;
    }

    private async Task WriteFrameAsync(byte[] frame, CancellationToken cancellationToken)
    {
        await _send.WaitAsync(cancellationToken);
        try
        {
            await _transport.WriteAsync(frame, cancellationToken);
            await _transport.FlushAsync(cancellationToken);
        }
        finally
        {
            _send.Release();
        }
    }

    /// <summary>Resets a stream the server will not serve.</summary>
    public async Task ResetAsync(uint streamId)
    {
        try
        {
            await SendControlAsync(RstStream, 0, [.. U32(streamId), .. U32(1)], CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Says goodbye (GOAWAY, status OK) before the transport closes.</summary>
    public async Task GoAwayAsync()
    {
        uint last;
        lock (_streams) last = _streams.Count == 0 ? 0 : _streams.Keys.Max();
        try
        {
            await SendControlAsync(GoAway, 0, [.. U32(last), .. U32(0)], CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _transport.DisposeAsync();
        _inflater.Dispose();
        _deflater.Dispose();
        _send.Dispose();
    }
}
