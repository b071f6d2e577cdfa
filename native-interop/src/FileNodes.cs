using System.Text;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>The file-system calls image unpacking needs and .NET lacks: device nodes, hard links, lchown, xattrs.</summary>
public static unsafe class FileNodes
{
    // x86_64 syscall numbers that Tmds.LibC does not bind.
    private const int SysLink = 86;
    private const int SysMknod = 133;
    private const int SysLsetxattr = 189;
    private const int SysLgetxattr = 192;
    private const int SysLstat = 6;

    private const uint CharacterDeviceType = 0x2000; // S_IFCHR
    private const uint BlockDeviceType = 0x6000;     // S_IFBLK
    private const uint FifoType = 0x1000;            // S_IFIFO
    private const uint FileTypeMask = 0xF000;        // S_IFMT

    public static void MakeCharacterDevice(string path, UnixFileMode mode, uint major, uint minor) =>
        MakeNode(path, CharacterDeviceType | (uint)mode, MakeDevice(major, minor));

    public static void MakeBlockDevice(string path, UnixFileMode mode, uint major, uint minor) =>
        MakeNode(path, BlockDeviceType | (uint)mode, MakeDevice(major, minor));

    public static void MakeFifo(string path, UnixFileMode mode) => MakeNode(path, FifoType | (uint)mode, 0);

    /// <summary>True when <paramref name="path"/> itself (not a symlink target) is a character device 0/0, an overlayfs whiteout.</summary>
    public static bool IsWhiteout(string path)
    {
        var stat = LinkStatus(path);
        return stat is { } s && (s.Mode & FileTypeMask) == CharacterDeviceType && s.Device == 0;
    }

    /// <summary>Creates a hard link; link(2) does not follow a symlink at <paramref name="existing"/>.</summary>
    public static void MakeHardLink(string existing, string link)
    {
        fixed (byte* e = Utf8Path.From(existing), l = Utf8Path.From(link))
        {
            Errno.Check((long)LibC.syscall(SysLink, e, l), "link", $"{link} -> {existing}");
        }
    }

    /// <summary>chown without following a symlink at <paramref name="path"/>.</summary>
    public static void ChangeOwner(string path, int uid, int gid)
    {
        fixed (byte* p = Utf8Path.From(path))
        {
            Errno.Check(LibC.lchown(p, (uint)uid, (uint)gid), "lchown", path);
        }
    }

    /// <summary>Sets an extended attribute on <paramref name="path"/> itself, not on a symlink's target.</summary>
    public static void SetExtendedAttribute(string path, string name, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = Utf8Path.From(path), n = Utf8Path.From(name), v = value)
        {
            Errno.Check((long)LibC.syscall(SysLsetxattr, p, n, v, (void*)value.Length, 0), "lsetxattr", $"{path} {name}");
        }
    }

    /// <summary>The attribute's value, or null when <paramref name="path"/> has no such attribute.</summary>
    public static byte[]? GetExtendedAttribute(string path, string name)
    {
        const int NoData = 61; // ENODATA
        byte[] buffer = new byte[4096];
        long length;
        fixed (byte* p = Utf8Path.From(path), n = Utf8Path.From(name), v = buffer)
        {
            length = (long)LibC.syscall(SysLgetxattr, p, n, v, (void*)buffer.Length);
        }
        if (length == -1)
        {
            int errno = LibC.errno;
            return errno == NoData ? null : throw new NativeCallException("lgetxattr", errno, $"{path} {name}");
        }
        return buffer[..(int)length];
    }

    public static string? GetExtendedAttributeText(string path, string name) =>
        GetExtendedAttribute(path, name) is { } value ? Encoding.UTF8.GetString(value) : null;

    /// <summary>glibc's makedev: the kernel's 64-bit dev_t layout.</summary>
    public static ulong MakeDevice(uint major, uint minor) =>
        ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8) |
        ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);

    private static void MakeNode(string path, uint mode, ulong device)
    {
        fixed (byte* p = Utf8Path.From(path))
        {
            Errno.Check((long)LibC.syscall(SysMknod, p, (void*)mode, (void*)device), "mknod", path);
        }
    }

    private readonly record struct NodeStatus(uint Mode, ulong Device);

    // struct stat on x86_64 (asm/stat.h): 144 bytes; st_mode at 24, st_rdev at 40.
    private static NodeStatus? LinkStatus(string path)
    {
        byte* buffer = stackalloc byte[144];
        fixed (byte* p = Utf8Path.From(path))
        {
            if ((long)LibC.syscall(SysLstat, p, buffer) == -1)
            {
                int errno = LibC.errno;
                return errno == LibC.ENOENT ? null : throw new NativeCallException("lstat", errno, path);
            }
        }
        return new NodeStatus(*(uint*)(buffer + 24), *(ulong*)(buffer + 40));
    }
}

public static unsafe class WorkingDirectories
{
    private const int SysChdir = 80;
    private const int CloneFs = 0x00000200; // CLONE_FS

    /// <summary>
    /// Runs <paramref name="action"/> on a new thread whose working directory is <paramref name="directory"/>,
    /// without touching the process's: unshare(CLONE_FS) gives the thread its own cwd, and the thread ends
    /// afterwards so no pooled thread keeps it. Relative paths in mount options need this.
    /// </summary>
    public static void RunIn(string directory, Action action)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Errno.Check(LibC.unshare(CloneFs), "unshare", "CLONE_FS");
                fixed (byte* p = Utf8Path.From(directory))
                {
                    Errno.Check((long)LibC.syscall(SysChdir, p), "chdir", directory);
                }
                action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }
}
