using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>A pseudoterminal pair: the master the daemon reads and writes, and the slave's /dev/pts path.</summary>
public sealed record PseudoterminalPair(SafeFileHandle Master, string SlavePath);

/// <summary>
/// Pseudoterminals for interactive exec: opening a pair through /dev/ptmx, raw mode and window size.
/// Uses the kernel ioctls directly (TIOCGPTN, TIOCSPTLCK, TCGETS/TCSETS, TIOCSWINSZ).
/// </summary>
public static unsafe class Pseudoterminals
{
    private const ulong Tcgets = 0x5401;
    private const ulong Tcsets = 0x5402;
    private const ulong Tiocswinsz = 0x5414;
    private const ulong Tiocgwinsz = 0x5413;
    private const ulong Tiocgptn = 0x80045430;
    private const ulong Tiocsptlck = 0x40045431;

    [StructLayout(LayoutKind.Sequential)]
    private struct KernelTermios
    {
        public uint InputFlags;
        public uint OutputFlags;
        public uint ControlFlags;
        public uint LocalFlags;
        public byte Line;
        public fixed byte ControlChars[19];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WindowSize
    {
        public ushort Rows;
        public ushort Columns;
        public ushort XPixels;
        public ushort YPixels;
    }

    /// <summary>Opens a new pair; the slave is unlocked and can be opened by path (by a child process).</summary>
    public static PseudoterminalPair Open()
    {
        int fd;
        fixed (byte* path = Utf8Path.From("/dev/ptmx"))
        {
            fd = Errno.Check(LibC.open(path, LibC.O_RDWR | LibC.O_NOCTTY | LibC.O_CLOEXEC), "open", "/dev/ptmx");
        }
        var master = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            int unlock = 0;
            Errno.Check(LibC.ioctl(fd, (int)Tiocsptlck, &unlock), "ioctl", "TIOCSPTLCK");
            uint number = 0;
            Errno.Check(LibC.ioctl(fd, unchecked((int)Tiocgptn), &number), "ioctl", "TIOCGPTN");
            return new PseudoterminalPair(master, $"/dev/pts/{number}");
        }
        catch
        {
            master.Dispose();
            throw;
        }
    }

    /// <summary>cfmakeraw on the pair: no echo, no line editing, no signal keys, no output processing.</summary>
    public static void MakeRaw(SafeFileHandle terminal)
    {
        WithFd(terminal, fd =>
        {
            KernelTermios termios;
            Errno.Check(LibC.ioctl(fd, (int)Tcgets, &termios), "ioctl", "TCGETS");
            termios.InputFlags &= ~(0x1u | 0x2u | 0x8u | 0x20u | 0x40u | 0x80u | 0x100u | 0x400u); // IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON
            termios.OutputFlags &= ~0x1u; // OPOST
            termios.LocalFlags &= ~(0x1u | 0x2u | 0x8u | 0x40u | 0x8000u); // ISIG ICANON ECHO ECHONL IEXTEN
            termios.ControlFlags &= ~(0x30u | 0x100u); // CSIZE PARENB
            termios.ControlFlags |= 0x30u; // CS8
            termios.ControlChars[6] = 1; // VMIN
            termios.ControlChars[5] = 0; // VTIME
            Errno.Check(LibC.ioctl(fd, (int)Tcsets, &termios), "ioctl", "TCSETS");
        });
    }

    /// <summary>Sets the window size; the terminal's foreground process group gets SIGWINCH.</summary>
    public static void SetWindowSize(SafeFileHandle terminal, ushort columns, ushort rows)
    {
        WithFd(terminal, fd =>
        {
            var size = new WindowSize { Rows = rows, Columns = columns };
            Errno.Check(LibC.ioctl(fd, (int)Tiocswinsz, &size), "ioctl", "TIOCSWINSZ");
        });
    }

    /// <summary>The window size as (columns, rows).</summary>
    public static (ushort Columns, ushort Rows) GetWindowSize(SafeFileHandle terminal)
    {
        (ushort, ushort) result = default;
        WithFd(terminal, fd =>
        {
            WindowSize size;
            Errno.Check(LibC.ioctl(fd, (int)Tiocgwinsz, &size), "ioctl", "TIOCGWINSZ");
            result = (size.Columns, size.Rows);
        });
        return result;
    }

    private static void WithFd(SafeHandle handle, Action<int> action)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            action((int)handle.DangerousGetHandle());
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }
}
