using System.Formats.Tar;
using System.Text;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Images;

/// <summary>A layer tried to write outside its directory, or holds an entry CriShim does not unpack.</summary>
public sealed class UnsafeLayerException(string message) : Exception(message);

/// <summary>
/// Unpacks one layer's tar stream into an empty directory as overlayfs expects it: OCI whiteouts
/// (<c>.wh.name</c>) become 0/0 character devices, opaque markers (<c>.wh..wh..opq</c>) the
/// trusted.overlay.opaque xattr; owners, modes, times, xattrs, hard links, symlinks and device nodes
/// are kept. Entries that climb out (<c>..</c>, absolute names, a path through a symlink) are refused
/// before anything is written for them.
/// </summary>
public static class LayerUnpacker
{
    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";
    private const string XattrPaxPrefix = "SCHILY.xattr.";
    private const int NotSupported = 95; // EOPNOTSUPP: the file system keeps no xattrs of that namespace

    /// <param name="layerSize">The layer descriptor's size: no file is preallocated beyond it, whatever its tar header claims.</param>
    /// <param name="skipEntry">Entries (by tar name) the caller applies itself (a restore's whiteouts), not unpacked.</param>
    public static async Task<LayerUsage> UnpackAsync(Stream tar, string root, long layerSize, CancellationToken cancellationToken, Func<string, bool>? skipEntry = null)
    {
        var extraction = new Extraction(Path.GetFullPath(root), layerSize);
        await using var reader = new TarReader(tar, leaveOpen: true);
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
        {
            if (skipEntry?.Invoke(entry.Name) == true) continue;
            await extraction.ApplyAsync(entry, cancellationToken);
        }
        extraction.SetDirectoryTimes();
        return extraction.Usage;
    }

    /// <summary>The entry's path relative to the layer root, or an UnsafeLayerException for one that leaves it.</summary>
    public static string Normalize(string name)
    {
        if (name.StartsWith('/')) throw new UnsafeLayerException($"layer entry \"{name}\" has an absolute path");
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (parts.Contains("..")) throw new UnsafeLayerException($"layer entry \"{name}\" climbs out of the layer with \"..\"");
        return string.Join('/', parts);
    }

    private sealed class Extraction(string root, long preallocationLimit)
    {
        // Directories known to be real (not symlinks) inside root; a path is checked once, not per entry.
        private readonly HashSet<string> _realDirectories = [root];
        private readonly List<(string Path, DateTimeOffset Time)> _directoryTimes = [];

        public LayerUsage Usage { get; } = new();

        public async Task ApplyAsync(TarEntry entry, CancellationToken cancellationToken)
        {
            if (entry.EntryType is TarEntryType.GlobalExtendedAttributes) return;
            string relative = Normalize(entry.Name);
            if (relative.Length == 0) return; // the layer root itself
            string name = Path.GetFileName(relative);
            string parent = RealDirectory(Path.GetDirectoryName(relative) ?? "", create: true, entry.Name);

            if (name == OpaqueMarker)
            {
                SetAttribute(parent, "trusted.overlay.opaque", "y"u8);
                return;
            }
            if (name.StartsWith(WhiteoutPrefix + WhiteoutPrefix, StringComparison.Ordinal)) return; // AUFS bookkeeping
            if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
            {
                string whitedOut = name[WhiteoutPrefix.Length..];
                // ".wh.", ".wh.." and ".wh..." would hide the parent or grandparent, not an entry of it.
                if (whitedOut is "" or "." or "..")
                {
                    throw new UnsafeLayerException($"layer entry \"{entry.Name}\" is a whiteout that names no entry");
                }
                string hidden = Path.Combine(parent, whitedOut);
                RemoveExisting(hidden);
                FileNodes.MakeCharacterDevice(hidden, 0, 0, 0);
                Usage.Inodes++;
                return;
            }

            string path = Path.Combine(parent, name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    if (!_realDirectories.Contains(path) && KindOf(path) != NodeKind.Directory)
                    {
                        RemoveExisting(path);
                        Directory.CreateDirectory(path);
                        Usage.Inodes++;
                    }
                    _realDirectories.Add(path);
                    _directoryTimes.Add((path, entry.ModificationTime));
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    RemoveExisting(path);
                    await using (var file = new FileStream(path, new FileStreamOptions
                    {
                        Mode = FileMode.CreateNew, // O_EXCL: never through a symlink that appeared meanwhile
                        Access = FileAccess.Write,
                        UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                        // A header's size is a claim until the data arrives; the descriptor's size is verified.
                        PreallocationSize = Math.Min(entry.Length, preallocationLimit),
                    }))
                    {
                        if (entry.DataStream is { } data) await data.CopyToAsync(file, cancellationToken);
                    }
                    Usage.Bytes += (ulong)entry.Length;
                    Usage.Inodes++;
                    break;
                case TarEntryType.SymbolicLink:
                    RemoveExisting(path);
                    File.CreateSymbolicLink(path, entry.LinkName); // its target is data, never followed here
                    Usage.Inodes++;
                    break;
                case TarEntryType.HardLink:
                    string target = ExistingTarget(entry);
                    RemoveExisting(path);
                    FileNodes.MakeHardLink(target, path);
                    return; // shares the target's inode, owner and mode
                case TarEntryType.CharacterDevice or TarEntryType.BlockDevice or TarEntryType.Fifo:
                    RemoveExisting(path);
                    var posix = (PosixTarEntry)entry;
                    if (entry.EntryType == TarEntryType.Fifo) FileNodes.MakeFifo(path, entry.Mode);
                    else if (entry.EntryType == TarEntryType.CharacterDevice) FileNodes.MakeCharacterDevice(path, entry.Mode, (uint)posix.DeviceMajor, (uint)posix.DeviceMinor);
                    else FileNodes.MakeBlockDevice(path, entry.Mode, (uint)posix.DeviceMajor, (uint)posix.DeviceMinor);
                    Usage.Inodes++;
                    break;
                default:
                    throw new UnsafeLayerException($"layer entry \"{entry.Name}\" has tar type {entry.EntryType}, which CriShim does not unpack");
            }
            ApplyMetadata(entry, path);
        }

        private static void ApplyMetadata(TarEntry entry, string path)
        {
            FileNodes.ChangeOwner(path, entry.Uid, entry.Gid);
            if (entry is PaxTarEntry pax)
            {
                foreach (var (key, value) in pax.ExtendedAttributes)
                {
                    if (key.StartsWith(XattrPaxPrefix, StringComparison.Ordinal))
                    {
                        SetAttribute(path, key[XattrPaxPrefix.Length..], Encoding.UTF8.GetBytes(value));
                    }
                }
            }
            if (entry.EntryType == TarEntryType.SymbolicLink) return;
            // chmod after chown, which clears set-id bits.
            File.SetUnixFileMode(path, entry.Mode);
            if (entry.EntryType != TarEntryType.Directory) File.SetLastWriteTimeUtc(path, entry.ModificationTime.UtcDateTime);
        }

        private static void SetAttribute(string path, string name, ReadOnlySpan<byte> value)
        {
            try
            {
                FileNodes.SetExtendedAttribute(path, name, value);
            }
            catch (NativeCallException e) when (e.Errno == NotSupported)
            {
            }
        }

        /// <summary>Directory times last: creating entries inside a directory changes its mtime.</summary>
        public void SetDirectoryTimes()
        {
            for (int i = _directoryTimes.Count - 1; i >= 0; i--)
            {
                Directory.SetLastWriteTimeUtc(_directoryTimes[i].Path, _directoryTimes[i].Time.UtcDateTime);
            }
        }

        /// <summary>
        /// root/relative as a real directory, checking each component: a symlink on the way is an escape
        /// attempt, a missing one is created (with <paramref name="create"/>).
        /// </summary>
        private string RealDirectory(string relative, bool create, string entryName)
        {
            string current = root;
            foreach (string component in relative.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                current = Path.Combine(current, component);
                if (_realDirectories.Contains(current)) continue;
                switch (KindOf(current))
                {
                    case NodeKind.Symlink:
                        throw new UnsafeLayerException(
                            $"layer entry \"{entryName}\" goes through the symlink \"{Path.GetRelativePath(root, current)}\"; refusing to write outside the layer");
                    case NodeKind.Missing when create:
                        Directory.CreateDirectory(current);
                        Usage.Inodes++;
                        break;
                    case NodeKind.Missing:
                        throw new InvalidDataException($"layer entry \"{entryName}\" refers to \"{relative}\", which the layer does not contain");
                    case NodeKind.Other:
                        throw new InvalidDataException($"layer entry \"{entryName}\" needs \"{Path.GetRelativePath(root, current)}\" to be a directory, but it is a file");
                }
                _realDirectories.Add(current);
            }
            return current;
        }

        private string ExistingTarget(TarEntry entry)
        {
            string relative = Normalize(entry.LinkName);
            string parent = RealDirectory(Path.GetDirectoryName(relative) ?? "", create: false, entry.Name);
            string target = Path.Combine(parent, Path.GetFileName(relative));
            return KindOf(target) switch
            {
                NodeKind.Missing => throw new InvalidDataException($"hard link \"{entry.Name}\" points to \"{entry.LinkName}\", which the layer does not contain"),
                NodeKind.Directory => throw new InvalidDataException($"hard link \"{entry.Name}\" points to the directory \"{entry.LinkName}\""),
                _ => target,
            };
        }

        /// <summary>Makes room for a new entry; a directory replaced by something else takes its subtree with it.</summary>
        private void RemoveExisting(string path)
        {
            switch (KindOf(path))
            {
                case NodeKind.Directory:
                    Directory.Delete(path, recursive: true);
                    _realDirectories.RemoveWhere(d => d == path || d.StartsWith(path + "/", StringComparison.Ordinal));
                    break;
                case NodeKind.Symlink or NodeKind.Other:
                    File.Delete(path);
                    break;
            }
        }
    }

    private enum NodeKind { Missing, Directory, Symlink, Other }

    /// <summary>What is at <paramref name="path"/> itself (lstat), without following a symlink.</summary>
    private static NodeKind KindOf(string path)
    {
        var attributes = new FileInfo(path).Attributes;
        if ((int)attributes == -1) return NodeKind.Missing;
        if (attributes.HasFlag(FileAttributes.ReparsePoint)) return NodeKind.Symlink;
        return attributes.HasFlag(FileAttributes.Directory) ? NodeKind.Directory : NodeKind.Other;
    }
}
