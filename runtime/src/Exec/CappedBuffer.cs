using System.Buffers;

namespace CriShim.Runtime.Exec;

/// <summary>
/// The first <see cref="Limit"/> bytes of a stream, raw. The rest is read and dropped, so a writer that
/// never stops neither blocks on a full pipe nor fills the daemon's memory.
/// </summary>
public sealed class CappedBuffer(int limit)
{
    private const int ChunkSize = 64 * 1024;
    private byte[] _bytes = [];

    public int Limit { get; } = limit;

    /// <summary>Bytes kept.</summary>
    public int Length { get; private set; }

    /// <summary>Bytes the stream carried, kept or dropped.</summary>
    public long TotalLength { get; private set; }

    public bool Truncated => TotalLength > Length;

    public ReadOnlyMemory<byte> Bytes => _bytes.AsMemory(0, Length);

    /// <summary>Reads the source to its end, dropping what is past the limit (a process's pipe, which must be drained).</summary>
    public Task FillAsync(Stream source, CancellationToken cancellationToken) => ReadAsync(source, drainPastLimit: true, cancellationToken);

    /// <summary>Reads the source to its end or until it carried more than the limit, whichever is first (a peer whose excess is refused).</summary>
    public Task FillUntilTruncatedAsync(Stream source, CancellationToken cancellationToken) => ReadAsync(source, drainPastLimit: false, cancellationToken);

    private async Task ReadAsync(Stream source, bool drainPastLimit, CancellationToken cancellationToken)
    {
        byte[] chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            int read;
            while ((drainPastLimit || !Truncated) && (read = await source.ReadAsync(chunk, cancellationToken)) > 0)
            {
                TotalLength += read;
                Append(chunk.AsSpan(0, Math.Min(read, Limit - Length)));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        int needed = Length + data.Length;
        // Doubling, but never past the limit: a small output costs little, a large one at most Limit.
        if (needed > _bytes.Length) Array.Resize(ref _bytes, Math.Min(Limit, Math.Max(needed, _bytes.Length * 2)));
        data.CopyTo(_bytes.AsSpan(Length));
        Length = needed;
    }
}
