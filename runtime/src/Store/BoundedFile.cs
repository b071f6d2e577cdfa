using CriShim.NativeInterop;
using Microsoft.Win32.SafeHandles;

namespace CriShim.Runtime.Store;

/// <summary>Opens and reads files a caller named without blocking on a FIFO or device planted in their place.</summary>
public static class BoundedFile
{
    /// <summary>
    /// A read-only handle on the regular file <paramref name="relative"/> inside <paramref name="root"/> (symlinks resolve
    /// inside it) and its length, or null when there is no such file. It is opened non-blocking, so a FIFO there cannot
    /// hang the caller, and fstat of the handle must show a regular file: anything else is refused as <paramref name="what"/>.
    /// </summary>
    public static (SafeFileHandle Handle, long Length)? OpenRegularInRoot(string root, string relative, string what)
    {
        var handle = RootedPaths.OpenFileInRoot(root, relative);
        if (handle is null) return null;
        try
        {
            long length = RootedPaths.RegularFileLength(handle) ?? throw new InvalidRequestException($"{what} is not a regular file");
            return (handle, length);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The bytes of the regular file <paramref name="relative"/> inside <paramref name="root"/> (see
    /// <see cref="OpenRegularInRoot"/>), or null when there is no such file; a file over <paramref name="limit"/> bytes
    /// is refused as <paramref name="what"/>.
    /// </summary>
    public static byte[]? ReadInRoot(string root, string relative, long limit, string what)
    {
        if (OpenRegularInRoot(root, relative, what) is not var (handle, length)) return null;
        using (handle)
        {
            if (length > limit) throw new InvalidRequestException($"{what} is {length} bytes, more than the {limit} read");
            var content = new byte[length];
            int read = RandomAccess.Read(handle, content, 0);
            return read == content.Length ? content : content[..read];
        }
    }
}
