using CriShim.NativeInterop;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// CRIU's images of a checkpoint live only until they are copied into the archive. Written to the state
/// root's disk, they cost a second trip through the filesystem (and, when writeback catches them before
/// they are deleted, a second disk write beside the archive's); on a private tmpfs mounted over the images
/// dir they stay in memory, so the archive's fsync is the one durable write of the pages. The tmpfs takes as
/// much memory as the dump for as long as the archive is written, so it is only used while the node has the
/// room: the dump's estimate (the container's memory usage) must fit in half of what is available, and the
/// tmpfs is capped at that half (a dump larger than the estimate that outgrew it would fail, not swap the node).
/// Otherwise the images go to the state root's disk as before.
/// </summary>
public static class DumpImagesTmpfs
{
    /// <summary>Room for the images beyond the memory usage: CRIU's own files (core, fs, mm, ...) and a margin.</summary>
    private const ulong Margin = 64UL << 20;

    /// <summary>
    /// Mounts a 0700 tmpfs (nosuid, nodev, noexec) over the existing, empty <paramref name="imagesDir"/> when a dump
    /// of about <paramref name="expectedBytes"/> fits in half the available memory and mounting is allowed; returns whether it did.
    /// </summary>
    public static bool TryMount(string imagesDir, ulong expectedBytes)
    {
        ulong cap = AvailableMemoryBytes() / 2;
        if (expectedBytes + Margin > cap) return false;
        try
        {
            Mounts.Mount("tmpfs", imagesDir, "tmpfs", MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec, $"mode=0700,size={cap}");
            return true;
        }
        catch (NativeCallException)
        {
            // No right to mount here (a restricted or rootless daemon): the disk will do.
            return false;
        }
    }

    /// <summary>Deletes a checkpoint work dir, unmounting its images tmpfs first if it has one.</summary>
    public static void DeleteWorkDir(string workDir)
    {
        Mounts.TryUnmount(Path.Combine(workDir, CheckpointImagesDirName), UnmountFlags.Detach);
        Directory.Delete(workDir, recursive: true);
    }

    /// <summary>The CRIU images dir inside a checkpoint work dir (and inside the archive).</summary>
    public const string CheckpointImagesDirName = "checkpoint";

    /// <summary>MemAvailable of /proc/meminfo: what can be allocated without swapping.</summary>
    private static ulong AvailableMemoryBytes()
    {
        foreach (string line in File.ReadLines("/proc/meminfo"))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return ulong.Parse(fields[1]) * 1024;
        }
        return 0;
    }
}
