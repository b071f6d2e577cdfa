using System.Collections.Concurrent;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Images;

/// <summary>
/// Verified blobs by digest under images/blobs/sha256/. A blob is written to images/ingest/ while it is
/// hashed and renamed into place only when digest and size match, so whatever a crash leaves in
/// blobs/ is correct, and ingest/ is emptied when the store opens.
/// </summary>
public sealed class ContentStore
{
    private readonly string _blobs;
    private readonly ConcurrentDictionary<string, long> _sizes = new();

    public ContentStore(string imagesRoot)
    {
        _blobs = Path.Combine(imagesRoot, "blobs", "sha256");
        IngestDirectory = Path.Combine(imagesRoot, "ingest");
        if (Directory.Exists(IngestDirectory)) Directory.Delete(IngestDirectory, recursive: true);
        StateDirectory.Create(IngestDirectory);
        StateDirectory.Create(_blobs);
        foreach (var blob in new DirectoryInfo(_blobs).EnumerateFiles())
        {
            _sizes[ContentDigest.Prefix + blob.Name] = blob.Length;
        }
    }

    /// <summary>Scratch space for partial blobs and layers being unpacked; emptied on start-up.</summary>
    public string IngestDirectory { get; }

    public ulong UsedBytes => (ulong)_sizes.Values.Sum();
    public ulong BlobCount => (ulong)_sizes.Count;

    public bool Has(string digest) => _sizes.ContainsKey(digest);

    public Stream OpenRead(string digest) => File.OpenRead(BlobPath(digest));

    /// <summary>The blob's file, for a tool that reads it in place (it must not be written).</summary>
    public string PathOf(string digest) => BlobPath(digest);

    public byte[] ReadAll(string digest) => File.ReadAllBytes(BlobPath(digest));

    /// <summary>Stores small content already in memory (a manifest) under its digest.</summary>
    public void Put(string digest, byte[] content)
    {
        if (Has(digest)) return;
        if (ContentDigest.Of(content) != digest) throw new InvalidDataException($"content does not match digest {digest}");
        AtomicFile.Write(BlobPath(digest), content);
        _sizes[digest] = content.Length;
    }

    public BlobIngest BeginIngest(string digest, long size) => new(this, digest, size);

    public void Delete(string digest)
    {
        File.Delete(BlobPath(digest));
        _sizes.TryRemove(digest, out _);
    }

    public IEnumerable<string> Digests => _sizes.Keys;

    private string BlobPath(string digest) => Path.Combine(_blobs, ContentDigest.Hex(ContentDigest.Require(digest, "blob")));

    /// <summary>One blob on its way in: a temp file filled through <see cref="Tee"/>, verified by <see cref="CommitAsync"/>.</summary>
    public sealed class BlobIngest : IDisposable
    {
        private readonly ContentStore _store;
        private readonly string _digest;
        private readonly long _size;
        private readonly string _tempPath;
        private readonly FileStream _temp;
        private HashingReadStream? _tee;
        private bool _committed;

        internal BlobIngest(ContentStore store, string digest, long size)
        {
            _store = store;
            _digest = digest;
            _size = size;
            _tempPath = Path.Combine(store.IngestDirectory, $"{ContentDigest.Hex(digest)}.{Guid.NewGuid():N}.partial");
            _temp = new FileStream(_tempPath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                BufferSize = 1 << 16,
            });
        }

        /// <summary>The registry's stream as the consumer should read it: every byte is hashed and saved.</summary>
        public Stream Tee(Stream source) => _tee = new HashingReadStream(source, _temp, _size, $"blob {_digest}");

        /// <summary>Reads what is left, then keeps the blob only if digest and size are the descriptor's.</summary>
        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            var tee = _tee ?? throw new InvalidOperationException("Tee was not called");
            await tee.DrainAsync(cancellationToken);
            string actual = tee.Digest();
            if (actual != _digest || tee.BytesRead != _size)
            {
                throw new InvalidDataException(
                    $"blob {_digest} failed verification: the registry sent {tee.BytesRead} bytes with digest {actual}, the manifest says {_size} bytes; discarded");
            }
            await _temp.FlushAsync(cancellationToken);
            _temp.Flush(flushToDisk: true);
            await _temp.DisposeAsync();
            File.Move(_tempPath, _store.BlobPath(_digest), overwrite: true);
            AtomicFile.SyncDirectory(_store._blobs);
            _store._sizes[_digest] = _size;
            _committed = true;
        }

        public void Dispose()
        {
            _tee?.Dispose();
            _temp.Dispose();
            if (!_committed) File.Delete(_tempPath);
        }
    }
}
