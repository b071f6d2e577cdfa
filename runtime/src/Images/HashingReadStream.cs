using System.Security.Cryptography;

namespace CriShim.Runtime.Images;

/// <summary>
/// A read-only pass-through that hashes every byte read, optionally copies it to a second stream
/// (the blob's temp file), and refuses to read past the size a descriptor promised.
/// </summary>
internal sealed class HashingReadStream(Stream inner, Stream? copy = null, long maxLength = long.MaxValue, string? what = null) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public long BytesRead { get; private set; }

    public string Digest() => ContentDigest.FromHash(_hash);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int read = await inner.ReadAsync(buffer, cancellationToken);
        if (read > 0)
        {
            Account(buffer.Span[..read]);
            if (copy is not null) await copy.WriteAsync(buffer[..read], cancellationToken);
        }
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        int read = inner.Read(buffer);
        if (read > 0)
        {
            Account(buffer[..read]);
            copy?.Write(buffer[..read]);
        }
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>Reads what the consumer left (tar padding, a compressor's trailer) so the hash covers everything.</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[81920];
        while (await ReadAsync(buffer, cancellationToken) > 0)
        {
        }
    }

    private void Account(ReadOnlySpan<byte> data)
    {
        BytesRead += data.Length;
        if (BytesRead > maxLength)
        {
            throw new InvalidDataException($"{what ?? "content"} is longer than the {maxLength} bytes its descriptor declares");
        }
        _hash.AppendData(data);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => BytesRead; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
