using CriShim.NativeInterop;
using CriShim.Runtime.Stats;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// CRIU's images of a checkpoint live only until they are copied into the archive. Written to the state
/// root's disk, they cost a second trip through the filesystem (and, when writeback catches them before
/// they are deleted, a second disk write beside the archive's); on a private tmpfs mounted over the images
/// dir they stay in memory, so the archive's fsync is the one durable write of the pages. The tmpfs takes as
/// much memory as the dump for as long as the archive is written, so it is only used while there is the
/// room: the dump's estimate (the container's memory usage) must fit in half of what is available, and the
/// tmpfs is capped at that half (a dump larger than the estimate that outgrew it would fail, not swap the node).
/// What is available is the node's MemAvailable, and, when the daemon runs in a memory-limited cgroup (a unit's
/// MemoryMax), no more than that cgroup's limit less its usage: tmpfs pages are charged to the cgroup of the
/// process that writes them, CRIU's, which is the daemon's, so a tmpfs beyond that room would OOM-kill the daemon.
/// Otherwise the images go to the state root's disk as before.
/// </summary>
public static class DumpImagesTmpfs
{
    /// <summary>Room for the images beyond the memory usage: CRIU's own files (core, fs, mm, ...) and a margin.</summary>
    private const ulong Margin = 64UL << 20;

    /// <summary>
    /// Mounts a 0700 tmpfs (nosuid, nodev, noexec) over the existing, empty <paramref name="imagesDir"/> when a dump
    /// of about <paramref name="expectedBytes"/> fits (see <see cref="Place"/>) and mounting is allowed.
    /// </summary>
    /// <returns>Where the images go, and why.</returns>
    public static DumpImagesPlacement TryMount(string imagesDir, ulong expectedBytes, CgroupReader cgroups)
    {
        var placement = Place(expectedBytes, AvailableMemoryBytes(), cgroups.MemoryHeadroom(Environment.ProcessId));
        if (!placement.OnTmpfs) return placement;
        try
        {
            Mounts.Mount("tmpfs", imagesDir, "tmpfs", MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec,
                $"mode=0700,size={placement.TmpfsBytes}");
            return placement;
        }
        catch (NativeCallException e)
        {
            // No right to mount here (a restricted or rootless daemon): the disk will do.
            return new DumpImagesPlacement(false, 0, $"mounting a tmpfs failed ({e.Message})");
        }
    }

    /// <summary>
    /// Whether a dump of about <paramref name="expectedBytes"/> goes to a tmpfs, and its size: the room is the node's
    /// <paramref name="availableMemory"/>, or the daemon's cgroup's <paramref name="cgroupHeadroom"/> (limit less usage;
    /// null when unlimited) when that is less; the dump and a margin must fit in half of it, the tmpfs's size.
    /// </summary>
    public static DumpImagesPlacement Place(ulong expectedBytes, ulong availableMemory, ulong? cgroupHeadroom)
    {
        bool cgroupBinds = cgroupHeadroom < availableMemory;
        ulong room = cgroupBinds ? cgroupHeadroom!.Value : availableMemory;
        string source = cgroupBinds
            ? $"the daemon's memory cgroup has {room} bytes left below its limit ({availableMemory} available on the node)"
            : $"{availableMemory} bytes of memory are available" + (cgroupHeadroom is null ? " and the daemon's memory cgroup is unlimited" : "");
        ulong half = room / 2;
        return expectedBytes + Margin <= half
            ? new DumpImagesPlacement(true, half, $"{expectedBytes} bytes of memory usage and a {Margin} byte margin fit in half of the room: {source}")
            : new DumpImagesPlacement(false, 0, $"{expectedBytes} bytes of memory usage and a {Margin} byte margin do not fit in half of the room: {source}");
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

/// <summary>Where a checkpoint's CRIU images go: a tmpfs of <see cref="TmpfsBytes"/> when <see cref="OnTmpfs"/>, else the disk; <see cref="Reason"/> says why.</summary>
public sealed record DumpImagesPlacement(bool OnTmpfs, ulong TmpfsBytes, string Reason);
