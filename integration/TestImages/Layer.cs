using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using ZstdSharp;

namespace CriShim.TestImages;

public enum LayerCompression
{
    None,
    Gzip,
    Zstd,
}

/// <summary>Permission bits by their octal names (C# has no octal literals).</summary>
public static class FileModes
{
    private const UnixFileMode All = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public const UnixFileMode Mode0777 = All | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
    public const UnixFileMode Mode1777 = Mode0777 | UnixFileMode.StickyBit;
    public const UnixFileMode Mode0755 = All | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
    public const UnixFileMode Mode4755 = Mode0755 | UnixFileMode.SetUser;
    public const UnixFileMode Mode0700 = All;
    public const UnixFileMode Mode0644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode Mode0640 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
}

/// <summary>A compressed layer blob and the digest of its uncompressed tar (the config's diff_id).</summary>
public sealed record Layer(Blob Blob, string DiffId, LayerCompression Compression);

/// <summary>
/// Builds one layer tar. Entries keep insertion order and a fixed mtime, and missing parent
/// directories are added (0755 root), so the same calls always give the same bytes.
/// </summary>
public sealed class LayerBuilder
{
    public static readonly DateTimeOffset FixedModificationTime = DateTimeOffset.UnixEpoch;

    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    private readonly List<TarEntry> _entries = [];
    private readonly HashSet<string> _directories = [];

    public LayerBuilder Directory(string path, UnixFileMode mode = FileModes.Mode0755, int uid = 0, int gid = 0)
    {
        string name = Normalize(path) + "/";
        if (!_directories.Add(name)) throw new InvalidOperationException($"directory {path} added twice");
        AddParents(name);
        return Add(new UstarTarEntry(TarEntryType.Directory, name), mode, uid, gid);
    }

    public LayerBuilder File(string path, byte[] content, UnixFileMode mode = FileModes.Mode0644, int uid = 0, int gid = 0)
    {
        var entry = new UstarTarEntry(TarEntryType.RegularFile, Parented(path))
        {
            DataStream = new MemoryStream(content, writable: false),
        };
        return Add(entry, mode, uid, gid);
    }

    public LayerBuilder File(string path, string content, UnixFileMode mode = FileModes.Mode0644, int uid = 0, int gid = 0) =>
        File(path, Encoding.UTF8.GetBytes(content), mode, uid, gid);

    public LayerBuilder Symlink(string path, string target) =>
        Add(new UstarTarEntry(TarEntryType.SymbolicLink, Parented(path)) { LinkName = target }, FileModes.Mode0777, 0, 0);

    /// <summary>A hard link to <paramref name="target"/>, a regular file added earlier in this layer.</summary>
    public LayerBuilder HardLink(string path, string target) =>
        Add(new UstarTarEntry(TarEntryType.HardLink, Parented(path)) { LinkName = Normalize(target) }, FileModes.Mode0755, 0, 0);

    /// <summary>Deletes <paramref name="path"/> of a lower layer (an AUFS-style <c>.wh.</c> file).</summary>
    public LayerBuilder Whiteout(string path)
    {
        string name = Normalize(path);
        string directory = Path.GetDirectoryName(name) is { Length: > 0 } d ? d + "/" : "";
        return File(directory + WhiteoutPrefix + Path.GetFileName(name), []);
    }

    /// <summary>Hides every lower-layer entry of the directory <paramref name="path"/>, then this layer adds its own.</summary>
    public LayerBuilder OpaqueDirectory(string path, UnixFileMode mode = FileModes.Mode0755) =>
        Directory(path, mode).File(Normalize(path) + "/" + OpaqueMarker, []);

    public byte[] ToTar()
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            foreach (var entry in _entries)
            {
                entry.DataStream?.Seek(0, SeekOrigin.Begin);
                writer.WriteEntry(entry);
            }
        }
        return tar.ToArray();
    }

    public Layer Build(LayerCompression compression = LayerCompression.Gzip) => Compress(ToTar(), compression);

    public static Layer Compress(byte[] tar, LayerCompression compression)
    {
        byte[] blob = compression switch
        {
            LayerCompression.None => tar,
            // .NET's gzip header carries mtime 0 and no file name, so equal input gives equal bytes.
            LayerCompression.Gzip => Encode(tar, output => new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true)),
            LayerCompression.Zstd => Encode(tar, output => new CompressionStream(output, level: 3, leaveOpen: true)),
            _ => throw new ArgumentOutOfRangeException(nameof(compression)),
        };
        return new Layer(new Blob(blob), Blob.Sha256Digest(tar), compression);
    }

    private static byte[] Encode(byte[] input, Func<Stream, Stream> encoder)
    {
        var output = new MemoryStream();
        using (var stream = encoder(output)) stream.Write(input);
        return output.ToArray();
    }

    private LayerBuilder Add(TarEntry entry, UnixFileMode mode, int uid, int gid)
    {
        entry.Mode = mode;
        entry.Uid = uid;
        entry.Gid = gid;
        entry.ModificationTime = FixedModificationTime;
        _entries.Add(entry);
        return this;
    }

    private string Parented(string path)
    {
        string name = Normalize(path);
        AddParents(name);
        return name;
    }

    private void AddParents(string name)
    {
        for (int slash = name.IndexOf('/'); slash > 0 && slash < name.Length - 1; slash = name.IndexOf('/', slash + 1))
        {
            string parent = name[..(slash + 1)];
            if (_directories.Add(parent)) Add(new UstarTarEntry(TarEntryType.Directory, parent), FileModes.Mode0755, 0, 0);
        }
    }

    private static string Normalize(string path)
    {
        string name = path.Trim('/');
        if (name.Length == 0 || name.Split('/').Any(part => part is "" or "." or ".."))
            throw new ArgumentException($"bad layer path '{path}'", nameof(path));
        return name;
    }
}
