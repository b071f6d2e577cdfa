using System.Runtime.InteropServices;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>What statfs(2) says about a filesystem, in bytes and inodes.</summary>
public readonly record struct FileSystemStats(
    long Type, long BlockSize, ulong Blocks, ulong BlocksFree, ulong BlocksAvailable, ulong Inodes, ulong InodesFree)
{
    public ulong TotalBytes => Blocks * (ulong)BlockSize;
    public ulong AvailableBytes => BlocksAvailable * (ulong)BlockSize;
    public ulong UsedBytes => (Blocks - BlocksFree) * (ulong)BlockSize;
    public ulong UsedInodes => Inodes - InodesFree;
}

public static unsafe class FileSystems
{
    public const long OverlayFsMagic = 0x794c7630;
    public const long TmpFsMagic = 0x01021994;
    public const long Cgroup2Magic = 0x63677270;

    private const int SysStatfs = 137; // x86_64; Tmds.LibC has no statfs binding

    // struct statfs on x86_64 (linux/statfs.h): all fields are 8 bytes wide.
    [StructLayout(LayoutKind.Sequential)]
    private struct StatfsBuffer
    {
        public long f_type, f_bsize;
        public ulong f_blocks, f_bfree, f_bavail, f_files, f_ffree;
        public long f_fsid, f_namelen, f_frsize, f_flags;
        public long spare0, spare1, spare2, spare3;
    }

    public static FileSystemStats StatFs(string path)
    {
        StatfsBuffer buffer;
        fixed (byte* p = Utf8Path.From(path))
        {
            Errno.Check((long)LibC.syscall(SysStatfs, p, &buffer), "statfs", path);
        }
        return new FileSystemStats(buffer.f_type, buffer.f_bsize, buffer.f_blocks, buffer.f_bfree, buffer.f_bavail,
            buffer.f_files, buffer.f_ffree);
    }
}

public static unsafe class Directories
{
    /// <summary>fsync on a directory makes a rename inside it durable; .NET cannot open directories for this.</summary>
    public static void Sync(string path)
    {
        int fd;
        fixed (byte* p = Utf8Path.From(path))
        {
            fd = Errno.Check(LibC.open(p, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0), "open", path);
        }
        try
        {
            Errno.Check(LibC.fsync(fd), "fsync", path);
        }
        finally
        {
            LibC.close(fd);
        }
    }
}
