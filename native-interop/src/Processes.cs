using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

public static unsafe class Processes
{
    // x86_64 syscall numbers that Tmds.LibC does not bind.
    private const int SysPrctl = 157;
    private const int SysPidfdSendSignal = 424;
    private const int SysPidfdOpen = 434;
    private const int PrSetChildSubreaper = 36;
    private const int PrSetName = 15;

    public static int CurrentPid => LibC.getpid();

    /// <summary>Sends a signal; false when the process is already gone.</summary>
    public static bool Kill(int pid, int signal)
    {
        if (LibC.kill(pid, signal) == 0) return true;
        int errno = LibC.errno;
        return errno == LibC.ESRCH ? false : throw new NativeCallException("kill", errno, $"pid {pid} signal {signal}");
    }

    public static bool IsAlive(int pid) => pid > 0 && (LibC.kill(pid, 0) == 0 || LibC.errno == LibC.EPERM);

    /// <summary>A pidfd pins the process identity, so a later signal cannot hit a recycled pid.</summary>
    public static SafeFileHandle OpenPidFd(int pid)
    {
        long fd = Errno.Check((long)LibC.syscall(SysPidfdOpen, pid, 0), "pidfd_open", $"pid {pid}");
        return new SafeFileHandle((nint)fd, ownsHandle: true);
    }

    public static bool SignalPidFd(SafeFileHandle pidFd, int signal)
    {
        long result = (long)LibC.syscall(SysPidfdSendSignal, (int)pidFd.DangerousGetHandle(), signal, (void*)null, 0);
        if (result == 0) return true;
        int errno = LibC.errno;
        return errno == LibC.ESRCH ? false : throw new NativeCallException("pidfd_send_signal", errno, $"signal {signal}");
    }

    /// <summary>Makes orphaned descendants re-parent to this process instead of PID 1.</summary>
    public static void SetChildSubreaper(bool enabled) =>
        Errno.Check((long)LibC.syscall(SysPrctl, PrSetChildSubreaper, enabled ? 1 : 0, 0, 0, 0), "prctl", "PR_SET_CHILD_SUBREAPER");

    public static void SetThreadName(string name)
    {
        fixed (byte* p = Utf8Path.From(name.Length > 15 ? name[..15] : name))
        {
            Errno.Check((long)LibC.syscall(SysPrctl, PrSetName, p, 0, 0, 0), "prctl", "PR_SET_NAME");
        }
    }
}
