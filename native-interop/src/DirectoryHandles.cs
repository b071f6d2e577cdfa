using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>O_PATH handles on directories, so a unix socket whose full path exceeds sun_path's
/// 108 bytes can still be reached as /proc/self/fd/N/name.</summary>
public static unsafe class DirectoryHandles
{
    public static SafeFileHandle OpenPath(string directory)
    {
        fixed (byte* path = Utf8Path.From(directory))
        {
            int fd = Errno.Check(LibC.open(path, LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC), "open", directory);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    /// <summary>The path of <paramref name="name"/> inside the directory that <paramref name="handle"/> holds open.</summary>
    public static string PathThrough(SafeFileHandle handle, string name) => $"{ProcPath(handle)}/{name}";

    /// <summary>/proc/self/fd/N: what <paramref name="handle"/> holds open, valid in this process while it is open.</summary>
    public static string ProcPath(SafeFileHandle handle) => $"/proc/self/fd/{handle.DangerousGetHandle()}";
}
