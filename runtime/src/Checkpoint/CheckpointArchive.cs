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
    public long BytesWritten => _stream.Position;

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

    /// <summary>Streams a file from disk into the archive under <paramref name="name"/>.</summary>
    public void AddFile(string path, string name, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _tar.WriteEntry(path, name);
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
    public void Commit()
    {
        _tar.Dispose();
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(TempPath, Location, overwrite: true);
        Directories.Sync(Path.GetDirectoryName(Location)!);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        _tar.Dispose();
        _stream.Dispose();
        File.Delete(TempPath);
    }
}
