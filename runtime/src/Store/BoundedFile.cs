using CriShim.NativeInterop;

namespace CriShim.Runtime.Store;

/// <summary>Reads a small file a caller named, bounded and without blocking on a FIFO or device planted in its place.</summary>
public static class BoundedFile
{
    /// <summary>
    /// The bytes of <paramref name="relative"/> inside <paramref name="root"/> (symlinks resolve inside it), or null
    /// when there is no such file. A FIFO is refused and a device has no length, so nothing is read from either; a file over
    /// <paramref name="limit"/> bytes is refused as <paramref name="what"/>.
    /// </summary>
    public static byte[]? ReadInRoot(string root, string relative, long limit, string what)
    {
        using var handle = RootedPaths.OpenFileInRoot(root, relative);
        if (handle is null) return null;
        long length;
        try
        {
            length = RandomAccess.GetLength(handle);
        }
        catch (NotSupportedException)
        {
            // A FIFO or socket: unseekable, and no file the caller may mean.
            throw new InvalidRequestException($"{what} is not a regular file");
        }
        if (length > limit) throw new InvalidRequestException($"{what} is {length} bytes, more than the {limit} read");
        var content = new byte[length];
        int read = RandomAccess.Read(handle, content, 0);
        return read == content.Length ? content : content[..read];
    }
}
