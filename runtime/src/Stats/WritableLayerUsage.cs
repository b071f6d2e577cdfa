using System.Collections.Concurrent;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Stats;

/// <summary>Disk space and inodes a directory tree takes.</summary>
public readonly record struct DiskUsage(ulong UsedBytes, ulong InodesUsed);

/// <summary>
/// The space a container's writable (upper) dir takes: allocated blocks, so sparse files count what
/// they use, each hard-linked inode once; symlinks are not followed and mounts not crossed. A tree is
/// walked at most every few seconds per container, as containerd's snapshot usage is refreshed.
/// </summary>
public sealed class WritableLayerUsage(TimeProvider clock)
{
    private static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(5);
    private static readonly EnumerationOptions OneLevel = new() { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false };

    private readonly ConcurrentDictionary<string, (DateTimeOffset At, DiskUsage Usage)> _cache = new();

    public DiskUsage Of(string containerId, string directory)
    {
        var now = clock.GetUtcNow();
        if (_cache.TryGetValue(containerId, out var cached) && now - cached.At < CacheLifetime) return cached.Usage;
        var usage = Measure(directory);
        _cache[containerId] = (now, usage);
        return usage;
    }

    public void Keep(IReadOnlySet<string> containerIds)
    {
        foreach (string id in _cache.Keys.Where(id => !containerIds.Contains(id))) _cache.TryRemove(id, out _);
    }

    /// <summary>Walks <paramref name="root"/> (counted too, as du does); 0/0 when it does not exist.</summary>
    public static DiskUsage Measure(string root)
    {
        if (LinkStatus.Of(root) is not { IsDirectory: true } top) return default;
        ulong bytes = top.AllocatedBytes, inodes = 1;
        var seenLinks = new HashSet<ulong>();
        var pending = new Stack<string>([root]);
        while (pending.TryPop(out string? directory))
        {
            IEnumerable<string> entries;
            try
            {
                entries = Directory.EnumerateFileSystemEntries(directory, "*", OneLevel).ToList();
            }
            catch (DirectoryNotFoundException)
            {
                continue; // removed while walking
            }
            foreach (string entry in entries)
            {
                if (LinkStatus.Of(entry) is not { } status) continue;
                if (status.Device != top.Device) continue; // a mount inside the tree is someone else's space
                if (status.LinkCount > 1 && !status.IsDirectory && !seenLinks.Add(status.Inode)) continue;
                bytes += status.AllocatedBytes;
                inodes++;
                if (status.IsDirectory) pending.Push(entry);
            }
        }
        return new DiskUsage(bytes, inodes);
    }
}
