using System.Runtime.InteropServices;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>
/// Network namespaces pinned by a bind mount on a file (as `ip netns add` does), so they outlive
/// every process in them and CNI plugins can be given a path.
/// </summary>
public static unsafe class NetworkNamespaces
{
    private const int SysGettid = 186; // x86_64
    private const int IffUp = 0x1;

    [StructLayout(LayoutKind.Sequential)]
    private struct InterfaceRequest
    {
        public fixed byte Name[16];
        public short Flags;
        private fixed byte _padding[22];
    }

    /// <summary>Creates a new network namespace with loopback up, pinned at <paramref name="path"/>.</summary>
    public static void CreatePinned(string path)
    {
        using (File.Create(path)) { }
        Exception? failure = null;
        // unshare moves only the calling thread; a throwaway thread keeps the daemon's own threads in the host namespace.
        var thread = new Thread(() =>
        {
            try
            {
                Namespaces.Unshare(NamespaceKind.Network);
                BringLoopbackUp();
                int tid = (int)(long)LibC.syscall(SysGettid);
                Mounts.Mount($"/proc/{Environment.ProcessId}/task/{tid}/ns/net", path, null, MountFlags.Bind);
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            File.Delete(path);
            throw failure;
        }
    }

    /// <summary>Pins the existing namespace at <paramref name="namespacePath"/> (e.g. /proc/PID/ns/net) at <paramref name="path"/>.</summary>
    public static void Pin(string namespacePath, string path)
    {
        using (File.Create(path)) { }
        try
        {
            Mounts.Mount(namespacePath, path, null, MountFlags.Bind);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Unpins and deletes the namespace file; a no-op when already gone.</summary>
    public static void Remove(string path)
    {
        Mounts.TryUnmount(path, UnmountFlags.Detach);
        // After a reboot even the directory of the pin (in the run root) may be gone.
        if (File.Exists(path)) File.Delete(path);
    }

    /// <summary>True when <paramref name="path"/> is a live namespace mount rather than a plain file.</summary>
    public static bool IsPinned(string path) =>
        File.Exists(path) && FileSystems.StatFs(path).Type == NsfsMagic;

    private const long NsfsMagic = 0x6e736673;

    private static void BringLoopbackUp()
    {
        int fd = Errno.Check(LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0), "socket", "AF_INET");
        try
        {
            InterfaceRequest request = default;
            request.Name[0] = (byte)'l';
            request.Name[1] = (byte)'o';
            Errno.Check(LibC.ioctl(fd, LibC.SIOCGIFFLAGS, &request), "ioctl", "SIOCGIFFLAGS lo");
            request.Flags |= IffUp;
            Errno.Check(LibC.ioctl(fd, LibC.SIOCSIFFLAGS, &request), "ioctl", "SIOCSIFFLAGS lo");
        }
        finally
        {
            LibC.close(fd);
        }
    }
}
