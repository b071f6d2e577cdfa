using System.Formats.Tar;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// The checkpoint archive: an uncompressed tar, 0600 and root-owned whatever the umask, written to
/// a temp file beside its location (O_EXCL), fsynced and renamed over it, so a reader never sees a
/// partial archive and a failure leaves the location untouched.
/// </summary>
public sealed class CheckpointArchive : IDisposable
{
    private const UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly FileStream _stream;
    private readonly TarWriter _tar;
    private bool _committed;

    private CheckpointArchive(string location, string tempPath, FileStream stream)
    {
        Location = location;
        TempPath = tempPath;
        _stream = stream;
        _tar = new TarWriter(stream, TarEntryFormat.Pax, leaveOpen: true);
    }

    public string Location { get; }
    public string TempPath { get; }

    public static string TempPathFor(string location) =>
        Path.Combine(Path.GetDirectoryName(location)!, $".{Path.GetFileName(location)}.{Guid.NewGuid():N}.tmp");

    /// <summary>Creates the temp file; missing parent directories are created 0700.</summary>
    public static CheckpointArchive Create(string location, string tempPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(location)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var stream = new FileStream(tempPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = RootOnly,
            BufferSize = 1 << 20,
        });
        // The umask may have taken bits off; set exactly 0600 on the open file.
        File.SetUnixFileMode(stream.SafeFileHandle, RootOnly);
        return new CheckpointArchive(location, tempPath, stream);
    }

    public void AddDirectory(string name) =>
        _tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name.TrimEnd('/') + "/") { Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute });

    /// <summary>
    /// Copies a file into the archive under <paramref name="name"/>, with its mode and modification time, inside the
    /// kernel (CRIU's memory pages are copied once, into the archive); the file must not change meanwhile.
    /// </summary>
    public void AddFile(string path, string name, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        var entry = new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = File.GetUnixFileMode(file.SafeFileHandle),
            ModificationTime = File.GetLastWriteTimeUtc(file.SafeFileHandle),
            DataStream = new KernelCopiedStream(file),
        };
        _tar.WriteEntry(entry);
    }

    /// <summary>
    /// Adds a file that may grow or shrink while it is copied (a log being written): exactly the size
    /// it had when opened, which the entry's header declares, padded with zeros if it shrank meanwhile.
    /// </summary>
    public void AddFileSnapshot(string path, string name, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        var entry = new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = RootOnly,
            ModificationTime = File.GetLastWriteTimeUtc(file.SafeFileHandle),
            DataStream = new SnapshotStream(file, file.Length),
        };
        _tar.WriteEntry(entry);
    }

    public void AddBytes(string name, ReadOnlySpan<byte> content)
    {
        var entry = new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = RootOnly,
            ModificationTime = DateTimeOffset.UtcNow,
            DataStream = new MemoryStream(content.ToArray()),
        };
        _tar.WriteEntry(entry);
    }

    /// <summary>Adds every file under <paramref name="directory"/> as &lt;prefix&gt;/&lt;relative path&gt;.</summary>
    public void AddTree(string directory, string prefix, CancellationToken cancellationToken)
    {
        AddDirectory(prefix);
        foreach (string path in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string name = $"{prefix}/{Path.GetRelativePath(directory, path)}";
            if (Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null) AddDirectory(name);
            else AddFile(path, name, cancellationToken);
        }
    }

    /// <summary>Finishes the tar, makes it durable and renames it over the location.</summary>
    /// <returns>The archive's size, end-of-archive blocks included.</returns>
    public long Commit()
    {
        _tar.Dispose();
        long size = _stream.Position;
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(TempPath, Location, overwrite: true);
        Directories.Sync(Path.GetDirectoryName(Location)!);
        _committed = true;
        return size;
    }

    /// <summary>
    /// Abandons an archive that was not committed: the temp file is closed and removed even when the
    /// disk is full (finishing the tar or flushing its buffer fails then), so no space stays held.
    /// </summary>
    public void Dispose()
    {
        if (_committed) return;
        try
        {
            _tar.Dispose();
        }
        catch (IOException)
        {
            // The end-of-archive blocks of a discarded archive need not fit.
        }
        try
        {
            // Closes the file even when flushing the buffer fails.
            _stream.Dispose();
        }
        catch (IOException)
        {
            // The buffered tail of a discarded archive need not fit either.
        }
        File.Delete(TempPath);
    }

    /// <summary>
    /// A file whose copy into the archive (TarWriter copies an entry's data with CopyTo) is done by the kernel; it
    /// reads as the file itself when the destination is not a file.
    /// </summary>
    private sealed class KernelCopiedStream(FileStream file) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => file.Length;

        public override long Position
        {
            get => file.Position;
            set => file.Position = value;
        }

        public override void CopyTo(Stream destination, int bufferSize)
        {
            if (destination is not FileStream { CanSeek: true } archive)
            {
                base.CopyTo(destination, bufferSize);
                return;
            }
            long wanted = file.Length - file.Position;
            // The archive's buffered header bytes go first; the copy then lands right after them.
            archive.Flush();
            long at = archive.Position;
            long copied = FileRanges.Copy(file.SafeFileHandle, file.Position, archive.SafeFileHandle, at, wanted);
            if (copied != wanted) throw new IOException($"{file.Name} shrank while it was archived");
            archive.Position = at + copied;
            file.Position += copied;
        }

        public override int Read(byte[] buffer, int offset, int count) => file.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => file.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => file.Seek(offset, origin);
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>The first <c>length</c> bytes of a file, whatever happens to it meanwhile: seekable, so the tar header declares exactly that size.</summary>
    private sealed class SnapshotStream(FileStream file, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int wanted = (int)Math.Min(buffer.Length, length - _position);
            if (wanted == 0) return 0;
            int read = RandomAccess.Read(file.SafeFileHandle, buffer[..wanted], _position);
            if (read == 0)
            {
                // The file shrank (truncated by a log rotation): zeros keep the entry its declared size.
                buffer[..wanted].Clear();
                read = wanted;
            }
            _position += read;
            return read;
        }

        public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
