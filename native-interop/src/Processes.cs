using Tmds.Linux;

namespace CriShim.NativeInterop;

public static class Processes
{
    /// <summary>Sends a signal; false when the process is already gone.</summary>
    public static bool Kill(int pid, int signal)
    {
        if (LibC.kill(pid, signal) == 0) return true;
        int errno = LibC.errno;
        return errno == LibC.ESRCH ? false : throw new NativeCallException("kill", errno, $"pid {pid} signal {signal}");
    }

    public static bool IsAlive(int pid) => pid > 0 && (LibC.kill(pid, 0) == 0 || LibC.errno == LibC.EPERM);
}
