using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>
/// Copies a range of one file into another inside the kernel (sendfile), across filesystems: the pages are
/// copied once, from the source's page cache into the destination's, never through a user-space buffer.
/// </summary>
public static partial class FileRanges
{
    /// <summary>sendfile moves at most this much per call.</summary>
    private const long MaxPerCall = 0x7ffff000;

    /// <summary>
    /// Copies <paramref name="count"/> bytes of <paramref name="source"/> from <paramref name="sourceOffset"/>
    /// to <paramref name="destination"/> at <paramref name="destinationOffset"/>; the destination's file offset
    /// ends after them. Returns the bytes copied: fewer only when the source ended first.
    /// </summary>
    public static long Copy(SafeFileHandle source, long sourceOffset, SafeFileHandle destination, long destinationOffset, long count)
    {
        if (Seek(destination, destinationOffset, LibC.SEEK_SET) == -1) throw new NativeCallException("lseek", Marshal.GetLastPInvokeError());
        long offset = sourceOffset;
        long copied = 0;
        while (copied < count)
        {
            long sent = SendFile(destination, source, ref offset, (nuint)Math.Min(count - copied, MaxPerCall));
            if (sent == -1)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR) continue;
                throw new NativeCallException("sendfile", errno);
            }
            if (sent == 0) break;
            copied += sent;
        }
        return copied;
    }

    [LibraryImport("libc", EntryPoint = "sendfile", SetLastError = true)]
    private static partial nint SendFile(SafeFileHandle outFd, SafeFileHandle inFd, ref long offset, nuint count);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Seek(SafeFileHandle fd, long offset, int whence);
}
