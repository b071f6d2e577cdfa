using CriShim.NativeInterop;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Images;

namespace CriShim.Runtime.Restore;

/// <summary>
/// What ContainerService needs to create a container from an extracted checkpoint instead of from its
/// image alone: the checkpointed image, the changes for its writable layer, its log and CRIU images.
/// </summary>
/// <param name="restoredFrom">The checkpoint as the request named it: the archive's path, or the image that carried it.</param>
/// <param name="dumpOptions">The CRIU options the dump used, which the restore passes again.</param>
public sealed class RestoreSource(ExtractedCheckpoint checkpoint, string restoredFrom, StoredImage image, CriuDumpOptions dumpOptions)
{
    /// <summary>The name of the CRIU image dir inside the container's state dir.</summary>
    public const string ImagesDirName = "checkpoint";

    public StoredImage Image => image;

    /// <summary>
    /// Applies rootfs-diff.tar (its whiteouts first, as deletions), then deleted.files, through the container's
    /// mounted rootfs (so overlayfs makes its own copy-ups and whiteouts). Entries were checked at intake;
    /// unpacking stays rooted.
    /// </summary>
    public async Task ApplyToRootfsAsync(string rootfs, CancellationToken cancellationToken)
    {
        if (checkpoint.RootfsDiff is { } diff)
        {
            foreach (string relative in checkpoint.Whiteouts.Removed) Delete(rootfs, relative);
            foreach (string relative in checkpoint.Whiteouts.Emptied) Empty(rootfs, relative);
            await using var stream = CheckpointArchiveIntake.OpenRootfsDiff(diff);
            try
            {
                // overlayfs refuses whiteout nodes made through the merged rootfs; they were applied as deletions.
                await LayerUnpacker.UnpackAsync(stream, rootfs, long.MaxValue, cancellationToken,
                    skipEntry: name => RootfsDiffWhiteouts.IsWhiteout(LayerUnpacker.Normalize(name)));
            }
            catch (Exception e) when (e is UnsafeLayerException or InvalidDataException)
            {
                throw new InvalidRequestException($"checkpoint {restoredFrom}: {Checkpoint.RootfsDiff.TarName}: {e.Message}");
            }
        }
        foreach (string relative in checkpoint.DeletedFiles) Delete(rootfs, relative);
    }

    /// <summary>Removes what root/relative holds (an opaque whiteout's directory), resolving each entry inside the root.</summary>
    private static void Empty(string root, string relative)
    {
        string directory;
        try
        {
            using var handle = RootedPaths.OpenDirectoryInRoot(root, relative.Length > 0 ? relative : ".");
            directory = RootedPaths.PathOf(handle);
        }
        catch (NativeCallException e) when (e.Errno is 2 or 20) // ENOENT, ENOTDIR: the diff makes it
        {
            return;
        }
        foreach (string entry in Directory.EnumerateFileSystemEntries(directory))
        {
            Delete(root, relative.Length > 0 ? $"{relative}/{Path.GetFileName(entry)}" : Path.GetFileName(entry));
        }
    }

    /// <summary>Removes root/relative, resolving its parent inside the root; what is already gone stays gone.</summary>
    private static void Delete(string root, string relative)
    {
        string? parentRelative = Path.GetDirectoryName(relative);
        string parent;
        try
        {
            using var handle = RootedPaths.OpenDirectoryInRoot(root, string.IsNullOrEmpty(parentRelative) ? "." : parentRelative);
            parent = RootedPaths.PathOf(handle);
        }
        catch (NativeCallException e) when (e.Errno is 2 or 20) // ENOENT, ENOTDIR: nothing there to delete
        {
            return;
        }
        string path = Path.Combine(parent, Path.GetFileName(relative));
        switch (LinkStatus.Of(path))
        {
            case null:
                return;
            case { IsDirectory: true }:
                Directory.Delete(path, recursive: true);
                return;
            default:
                File.Delete(path);
                return;
        }
    }

    /// <summary>
    /// Moves the CRIU images into the container's state dir (they live as long as the container) and
    /// continues the checkpointed log at the container's log path; returns what the record keeps.
    /// </summary>
    public ContainerRestoreState Adopt(string containerDir, string logPath)
    {
        string imagesDir = Path.Combine(containerDir, ImagesDirName);
        Directory.Move(checkpoint.ImagesDir, imagesDir);
        if (checkpoint.Log is { } log) File.Copy(log, logPath, overwrite: true);
        return new ContainerRestoreState(restoredFrom, imagesDir, checkpoint.Config.Id, DumpOptions: dumpOptions);
    }
}
