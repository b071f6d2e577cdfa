using System.Formats.Tar;
using System.Text.Json;
using CriShim.NativeInterop;
using CriShim.Runtime.Images;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// The container's writable-layer changes as CRI-O exports them: rootfs-diff.tar (files added or
/// changed) and deleted.files (a JSON list), leaving out mount destinations and virtual filesystems,
/// and, as CRI-O does, sockets, fifos and device nodes (a tar cannot carry a socket, and restoring a
/// device node from an archive would be a hole).
/// </summary>
public static class RootfsDiff
{
    public const string TarName = "rootfs-diff.tar";
    public const string DeletedName = "deleted.files";

    /// <summary>Writes both files into <paramref name="workDir"/> when there are changes; returns how many paths.</summary>
    public static int Capture(IRootfsService rootfs, string containerId, IReadOnlyCollection<string> excludedDestinations, string workDir)
    {
        var changes = rootfs.Changes(containerId)
            .Where(c => !IsExcluded(c.Path, excludedDestinations))
            .ToList();
        string upper = rootfs.UpperDir(containerId);
        var changed = changes
            .Where(c => c.Kind != RootfsChangeKind.Deleted && LinkStatus.Of(Path.Combine(upper, c.Path.TrimStart('/'))) is { IsSpecial: false })
            .ToList();
        if (changed.Count > 0)
        {
            using var stream = new FileStream(Path.Combine(workDir, TarName), new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            using var tar = new TarWriter(stream, TarEntryFormat.Pax);
            foreach (var change in changed.OrderBy(c => c.Path, StringComparer.Ordinal))
            {
                string relative = change.Path.TrimStart('/');
                tar.WriteEntry(Path.Combine(upper, relative), relative);
            }
        }
        var deleted = changes.Where(c => c.Kind == RootfsChangeKind.Deleted).Select(c => c.Path).Order(StringComparer.Ordinal).ToList();
        if (deleted.Count > 0)
        {
            File.WriteAllBytes(Path.Combine(workDir, DeletedName), JsonSerializer.SerializeToUtf8Bytes(deleted, CheckpointJson.Default.ListString));
        }
        return changes.Count;
    }

    public static bool IsExcluded(string path, IReadOnlyCollection<string> excludedDestinations) =>
        excludedDestinations.Any(d => path == d || path.StartsWith(d.TrimEnd('/') + "/", StringComparison.Ordinal));
}
