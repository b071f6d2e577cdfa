using System.Text;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>
/// Reads the kernel's small pseudo-files (/proc, cgroupfs) that list and stats calls read for every item: open, one
/// read, close. File.ReadAllText on such a file also takes and drops an advisory lock, asks fstat for a length the
/// kernel does not know, and reads again to find the end; here the kernel fills the bounded buffer in one read
/// (a seq_file read stops short only at the end), so three system calls fetch a figure.
/// </summary>
public static unsafe class PseudoFiles
{
    /// <summary>The most read of one file; a longer file is cut there, at the last whole line.</summary>
    public const int MaxBytes = 16 << 10;

    /// <summary>The text of <paramref name="path"/>, or null when it cannot be read (gone: an exited process, a removed cgroup).</summary>
    public static string? ReadText(string path)
    {
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(MaxBytes);
        try
        {
            int length = Read(path, buffer.AsSpan(0, MaxBytes));
            if (length < 0) return null;
            if (length == MaxBytes) length = buffer.AsSpan(0, length).LastIndexOf((byte)'\n') + 1;
            return Encoding.UTF8.GetString(buffer, 0, length);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads up to <paramref name="buffer"/>'s length of <paramref name="path"/>; -1 when it cannot be opened or read.</summary>
    public static int Read(string path, Span<byte> buffer)
    {
        int pathBytes = Encoding.UTF8.GetByteCount(path);
        Span<byte> nulTerminated = pathBytes < 512 ? stackalloc byte[pathBytes + 1] : new byte[pathBytes + 1];
        Encoding.UTF8.GetBytes(path, nulTerminated);
        nulTerminated[pathBytes] = 0;
        int fd;
        fixed (byte* p = nulTerminated)
        {
            fd = LibC.open(p, LibC.O_RDONLY | LibC.O_CLOEXEC);
        }
        if (fd < 0) return -1;
        try
        {
            fixed (byte* b = buffer)
            {
                long read;
                do read = LibC.read(fd, b, buffer.Length);
                while (read < 0 && LibC.errno == LibC.EINTR);
                return (int)read;
            }
        }
        finally
        {
            LibC.close(fd);
        }
    }
}
