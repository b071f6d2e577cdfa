using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>What lstat(2) says of a path itself (a symlink is not followed): the fields disk-usage walks need.</summary>
/// <param name="ChangeTime">ctime as (seconds, nanoseconds): with device and inode, tells a file from a later one that reused its inode.</param>
public readonly record struct LinkStatus(uint Mode, ulong Inode, ulong Device, uint LinkCount, ulong AllocatedBytes, (long Seconds, uint Nanoseconds) ChangeTime)
{
    private const uint FileTypeMask = 0xF000; // S_IFMT
    private const uint DirectoryType = 0x4000; // S_IFDIR
    private const uint RegularFileType = 0x8000; // S_IFREG
    private const uint SymbolicLinkType = 0xA000; // S_IFLNK

    public bool IsDirectory => (Mode & FileTypeMask) == DirectoryType;

    public bool IsRegularFile => (Mode & FileTypeMask) == RegularFileType;

    /// <summary>A socket, fifo or device node: none of a regular file, a directory or a symbolic link.</summary>
    public bool IsSpecial => (Mode & FileTypeMask) is not (RegularFileType or DirectoryType or SymbolicLinkType);

    /// <summary>The path's status, or null when it no longer exists.</summary>
    public static unsafe LinkStatus? Of(string path)
    {
        statx buffer;
        fixed (byte* p = Utf8Path.From(path))
        {
            if (LibC.statx(LibC.AT_FDCWD, p, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &buffer) == -1)
            {
                int errno = LibC.errno;
                return errno == LibC.ENOENT ? null : throw new NativeCallException("statx", errno, path);
            }
        }
        // st_blocks counts 512-byte units whatever the filesystem's block size.
        return new LinkStatus(buffer.stx_mode, buffer.stx_ino, FileNodes.MakeDevice(buffer.stx_dev_major, buffer.stx_dev_minor),
            buffer.stx_nlink, buffer.stx_blocks * 512, (buffer.stx_ctime.tv_sec, buffer.stx_ctime.tv_nsec));
    }
}
