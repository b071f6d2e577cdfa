using Tmds.Linux;

namespace CriShim.NativeInterop;

[Flags]
public enum MountFlags : ulong
{
    None = 0,
    ReadOnly = 1,          // MS_RDONLY
    NoSuid = 2,            // MS_NOSUID
    NoDev = 4,             // MS_NODEV
    NoExec = 8,            // MS_NOEXEC
    Remount = 32,          // MS_REMOUNT
    Bind = 4096,           // MS_BIND
    Move = 8192,           // MS_MOVE
    Recursive = 16384,     // MS_REC
    Private = 1 << 18,     // MS_PRIVATE
    Slave = 1 << 19,       // MS_SLAVE
    Shared = 1 << 20,      // MS_SHARED
}

[Flags]
public enum UnmountFlags
{
    None = 0,
    Force = 1,             // MNT_FORCE
    Detach = 2,            // MNT_DETACH
    NoFollow = 8,          // UMOUNT_NOFOLLOW
}

public static unsafe class Mounts
{
    public static void Mount(string? source, string target, string? fsType, MountFlags flags, string? data = null)
    {
        byte[]? src = Utf8Path.From(source), tgt = Utf8Path.From(target), fs = Utf8Path.From(fsType), opts = Utf8Path.From(data);
        fixed (byte* s = src, t = tgt, f = fs, o = opts)
        {
            Errno.Check(LibC.mount(s, t, f, (ulong_t)(ulong)flags, o), "mount", $"{source ?? "none"} on {target}");
        }
    }

    public static void Unmount(string target, UnmountFlags flags = UnmountFlags.None)
    {
        fixed (byte* t = Utf8Path.From(target))
        {
            Errno.Check(LibC.umount2(t, (int)flags), "umount2", target);
        }
    }

    /// <summary>Unmounts, treating "not mounted" and "no such path" as already done.</summary>
    public static bool TryUnmount(string target, UnmountFlags flags = UnmountFlags.None)
    {
        try
        {
            Unmount(target, flags);
            return true;
        }
        catch (NativeCallException e) when (e.Errno == LibC.EINVAL || e.Errno == LibC.ENOENT)
        {
            return false;
        }
    }
}
