using System.Text.RegularExpressions;
using CriShim.NativeInterop;
using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Images;

/// <summary>
/// Container root filesystems under &lt;state.root&gt;/rootfs/&lt;id&gt;/: an overlay of the image's layers
/// (lowerdir by short links, see <see cref="LayerStore"/>) with upper/ and work/ of its own, mounted on
/// merged/. The layer list is recorded on first mount, so a remount after a restart sees the same
/// layers, and so image removal can tell which layers are still used.
/// </summary>
public sealed partial class OverlayRootfsService(string stateRoot, ImageStore images, LayerStore layers, ILogger<OverlayRootfsService> logger)
    : IRootfsService
{
    /// <summary>mount(2) copies at most one page of options, including the terminating NUL.</summary>
    private const int MountOptionsLimit = 4095;

    /// <summary>mount(2) takes one page of options: a longer layer chain cannot be one overlay.</summary>
    internal static void CheckOptionsFit(string options, string what, int layerCount)
    {
        if (options.Length > MountOptionsLimit)
        {
            throw new WrongStateException($"{what} has {layerCount} layers, too many for one overlay mount ({options.Length} bytes of options, limit {MountOptionsLimit})");
        }
    }
    private const string LayersFile = "layers";
    private static readonly TimeSpan UsageCacheLifetime = TimeSpan.FromSeconds(10);

    private readonly Lock _gate = new();
    private (DateTime At, ulong Bytes, ulong Inodes) _usage;

    public string Root { get; } = Path.Combine(stateRoot, "rootfs");

    public Task<string> MountAsync(string containerId, StoredImage image, CancellationToken cancellationToken, RootfsIdMap? idMap = null)
    {
        string directory = ContainerDirectory(containerId);
        string merged = Path.Combine(directory, "merged"), upper = UpperDir(containerId), work = Path.Combine(directory, "work");
        using var timing = PhaseLog.Time("mount rootfs", containerId);
        lock (_gate)
        {
            if (MountTable.IsMountPoint(merged)) return Task.FromResult(merged);
            IReadOnlyList<string>? diffIds = RecordedLayers(containerId);
            if (diffIds is null)
            {
                diffIds = images.DiffIdsOf(image.Id) ?? throw new NotFoundException($"image {image.Id} is not in the store");
                StateDirectory.Create(work);
                StateDirectory.Create(merged);
                // The overlay's root takes the upper dir's mode: the container's "/". Host users are kept out by its parent.
                StateDirectory.Create(upper, StateDirectory.Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
                    UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
                AtomicFile.WriteText(Path.Combine(directory, LayersFile), string.Join('\n', diffIds));
            }
            if (idMap is not null)
            {
                // The overlay's root directory takes the upper dir's owner; the pod's root reaches merged/ from inside its namespace.
                FileNodes.ChangeOwner(upper, (int)idMap.RootHostUid, (int)idMap.RootHostGid);
                StateDirectory.OpenToGroup(directory, idMap.RootHostGid);
            }
            using (var lowers = layers.Lowers(diffIds, idMap, $"container {containerId}"))
            {
                // An image without layers gets an empty lower dir.
                string lower = diffIds.Count == 0 ? EnsureEmptyLower(directory) : string.Join(':', lowers.Paths);
                string options = $"lowerdir={lower},upperdir={upper},workdir={work}";
                CheckOptionsFit(options, $"the image of container {containerId}", diffIds.Count);
                WorkingDirectories.RunIn(layers.Home, () => Mounts.Mount("overlay", merged, "overlay", MountFlags.None, options));
            }
            logger.LogDebug("mounted rootfs of {Container}: {Layers} layers, idmapped: {IdMapped}", containerId, diffIds.Count, idMap is not null);
            return Task.FromResult(merged);
        }
    }

    public Task UnmountAsync(string containerId, CancellationToken cancellationToken)
    {
        string merged = Path.Combine(ContainerDirectory(containerId), "merged");
        using var timing = PhaseLog.Time("unmount rootfs", containerId);
        lock (_gate)
        {
            if (MountTable.IsMountPoint(merged)) Mounts.Unmount(merged);
        }
        return Task.CompletedTask;
    }

    public async Task RemoveAsync(string containerId, CancellationToken cancellationToken)
    {
        await UnmountAsync(containerId, cancellationToken);
        string directory = ContainerDirectory(containerId);
        lock (_gate)
        {
            // Never recurse into a mounted overlay: that would delete the image's layers through it.
            if (MountTable.IsMountPoint(Path.Combine(directory, "merged"))) throw new WrongStateException($"rootfs of {containerId} is still mounted");
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    public string UpperDir(string containerId) => Path.Combine(ContainerDirectory(containerId), "upper");

    public IReadOnlyList<RootfsChange> Changes(string containerId)
    {
        string upper = UpperDir(containerId);
        var lowerDirs = (RecordedLayers(containerId) ?? []).AsEnumerable().Reverse().Select(layers.DiffDirectory).ToList();
        var changes = new List<RootfsChange>();
        foreach (var entry in Walk(upper))
        {
            string relative = Path.GetRelativePath(upper, entry.FullName);
            var kind = FileNodes.IsWhiteout(entry.FullName) ? RootfsChangeKind.Deleted
                : lowerDirs.Any(lower => Exists(Path.Combine(lower, relative))) ? RootfsChangeKind.Modified
                : RootfsChangeKind.Added;
            changes.Add(new RootfsChange("/" + relative, kind));
        }
        return changes;
    }

    public ulong WritableLayerBytes(string containerId) =>
        Walk(UpperDir(containerId)).Aggregate(0UL, (sum, entry) => sum + (entry is FileInfo file && file.LinkTarget is null ? (ulong)file.Length : 0));

    /// <summary>All writable layers' bytes and inodes; walked at most every 10 s (as containerd's snapshot syncer does).</summary>
    public (ulong Bytes, ulong Inodes) Usage()
    {
        lock (_gate)
        {
            if (DateTime.UtcNow - _usage.At > UsageCacheLifetime)
            {
                ulong bytes = 0, inodes = 0;
                foreach (string container in Directory.Exists(Root) ? Directory.EnumerateDirectories(Root) : [])
                {
                    foreach (var entry in Walk(Path.Combine(container, "upper")))
                    {
                        inodes++;
                        if (entry is FileInfo file && file.LinkTarget is null) bytes += (ulong)file.Length;
                    }
                }
                _usage = (DateTime.UtcNow, bytes, inodes);
            }
            return (_usage.Bytes, _usage.Inodes);
        }
    }

    /// <summary>Layers some container's rootfs was made from; they are kept even if their image is removed.</summary>
    public HashSet<string> LayersInUse() =>
        Directory.Exists(Root)
            ? Directory.EnumerateDirectories(Root).SelectMany(dir => RecordedLayers(Path.GetFileName(dir)) ?? []).ToHashSet()
            : [];

    private List<string>? RecordedLayers(string containerId)
    {
        string path = Path.Combine(ContainerDirectory(containerId), LayersFile);
        return File.Exists(path) ? File.ReadAllText(path).Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList() : null;
    }

    private static string EnsureEmptyLower(string directory)
    {
        string empty = Path.Combine(directory, "empty");
        StateDirectory.Create(empty);
        return empty;
    }

    private string ContainerDirectory(string containerId) =>
        ContainerIdPattern().IsMatch(containerId)
            ? Path.Combine(Root, containerId)
            : throw new InvalidRequestException($"container id \"{containerId}\" is not a valid directory name");

    private static IEnumerable<FileSystemInfo> Walk(string directory) =>
        Directory.Exists(directory)
            ? new DirectoryInfo(directory).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true })
            : [];

    private static bool Exists(string path) => (int)new FileInfo(path).Attributes != -1;

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\z")]
    private static partial Regex ContainerIdPattern();
}

/// <summary>Answers "is this path a mount point" from /proc/self/mountinfo.</summary>
public static class MountTable
{
    public static bool IsMountPoint(string path)
    {
        string full = Path.GetFullPath(path);
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            // Fields: id parent major:minor root mountpoint ...; spaces and the like are octal-escaped.
            string[] fields = line.Split(' ', 6);
            if (fields.Length > 4 && Unescape(fields[4]) == full) return true;
        }
        return false;
    }

    private static string Unescape(string field) =>
        field.Contains('\\') ? Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString()) : field;
}
