using System.Threading.Channels;
using CriShim.Runtime.Oci;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// The client's side of an exec or attach, whatever the transport (WebSocket or SPDY): stdin reads 0
/// at the client's end of input, outputs are written as they come, resizes arrive in order.
/// A null stream is one the client did not ask for.
/// </summary>
public sealed class RemoteCommandStreams
{
    public Stream? Stdin { get; init; }
    public Stream? Stdout { get; init; }
    public Stream? Stderr { get; init; }
    public ChannelReader<TerminalSize>? Resizes { get; init; }
}

/// <summary>A write-only stream that hands each write to an async sink (a WebSocket channel, a SPDY stream).</summary>
internal sealed class SinkStream(Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        const int chunk = 32 * 1024;
        while (buffer.Length > 0)
        {
            var part = buffer[..Math.Min(chunk, buffer.Length)];
            await sink(part, cancellationToken);
            buffer = buffer[part.Length..];
        }
    }
}
