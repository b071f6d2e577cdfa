using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>
/// openat2(RESOLVE_IN_ROOT): a path resolved as if a directory were "/", so that neither "..", nor an
/// absolute or relative symlink, can lead out of it (symlinks inside an image mean the image's own paths).
/// </summary>
public static unsafe class RootedPaths
{
    // Newer than the per-architecture tables: one number everywhere. Tmds.LibC does not bind it.
    private const int SysOpenat2 = 437;
    private const ulong ResolveNoMagicLinks = 0x02; // RESOLVE_NO_MAGICLINKS
    private const ulong ResolveInRoot = 0x10;       // RESOLVE_IN_ROOT
    private const uint FileTypeMask = 0xF000;       // S_IFMT
    private const uint RegularFileType = 0x8000;    // S_IFREG

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    /// <summary>An O_PATH handle on the directory <paramref name="relative"/> names inside <paramref name="root"/>.</summary>
    public static SafeFileHandle OpenDirectoryInRoot(string root, string relative) =>
        OpenInRoot(root, relative, LibC.O_PATH | LibC.O_DIRECTORY);

    /// <summary>
    /// A read-only handle on the file <paramref name="relative"/> names inside <paramref name="root"/>, or null
    /// when there is none. Non-blocking, so a FIFO planted there cannot hang the reader.
    /// </summary>
    public static SafeFileHandle? OpenFileInRoot(string root, string relative)
    {
        try
        {
            return OpenInRoot(root, relative, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_NOCTTY);
        }
        catch (NativeCallException e) when (e.Errno == LibC.ENOENT || e.Errno == LibC.ENOTDIR)
        {
            return null;
        }
    }

    /// <summary>
    /// The size of the regular file <paramref name="handle"/> holds open, from fstat of the handle itself (not of a
    /// path that may since name something else); null when it holds anything but a regular file.
    /// </summary>
    public static long? RegularFileLength(SafeFileHandle handle)
    {
        statx buffer;
        byte empty = 0;
        Errno.Check(LibC.statx((int)handle.DangerousGetHandle(), &empty, LibC.AT_EMPTY_PATH, LibC.STATX_TYPE | LibC.STATX_SIZE, &buffer),
            "fstat", $"fd {handle.DangerousGetHandle()}");
        return (buffer.stx_mode & FileTypeMask) == RegularFileType ? (long)buffer.stx_size : null;
    }

    private static SafeFileHandle OpenInRoot(string root, string relative, int flags)
    {
        using var rootHandle = DirectoryHandles.OpenPath(root);
        var how = new OpenHow { Flags = (ulong)(flags | LibC.O_CLOEXEC), Resolve = ResolveInRoot | ResolveNoMagicLinks };
        fixed (byte* path = Utf8Path.From(relative))
        {
            int fd = (int)Errno.Check((long)LibC.syscall(SysOpenat2, (void*)rootHandle.DangerousGetHandle(), path, &how, (void*)sizeof(OpenHow)),
                "openat2", $"{relative} in {root}");
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    /// <summary>The absolute path of what <paramref name="handle"/> holds open, as the kernel names it.</summary>
    public static string PathOf(SafeFileHandle handle) =>
        new FileInfo(DirectoryHandles.ProcPath(handle)).LinkTarget
        ?? throw new IOException($"fd {handle.DangerousGetHandle()} has no path");
}
