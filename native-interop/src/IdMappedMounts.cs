using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>
/// Idmapped mounts (open_tree + mount_setattr MOUNT_ATTR_IDMAP): a detached copy of a directory's
/// mount whose file owners appear shifted through a user namespace's mappings, so root of a pod's
/// user namespace owns image layers that the host's root owns on disk.
/// </summary>
public static unsafe class IdMappedMounts
{
    // Both syscalls are newer than the per-architecture tables: one number everywhere. Tmds.LibC binds neither.
    private const int SysOpenTree = 428;
    private const int SysMountSetattr = 442;
    private const int OpenTreeClone = 1;       // OPEN_TREE_CLONE
    private const int AtEmptyPath = 0x1000;    // AT_EMPTY_PATH
    private const ulong MountAttrIdmap = 0x00100000; // MOUNT_ATTR_IDMAP

    [StructLayout(LayoutKind.Sequential)]
    private struct MountAttributes
    {
        public ulong Set;
        public ulong Clear;
        public ulong Propagation;
        public ulong UserNamespaceFd;
    }

    /// <summary>
    /// A detached clone of the mount at <paramref name="directory"/>, idmapped through the user namespace
    /// <paramref name="userNamespace"/> refers to. It stays reachable as <see cref="DirectoryHandles.ProcPath"/> while the handle is open.
    /// </summary>
    public static SafeFileHandle CloneIdMapped(string directory, SafeHandle userNamespace)
    {
        int fd;
        fixed (byte* path = Utf8Path.From(directory))
        {
            fd = (int)Errno.Check((long)LibC.syscall(SysOpenTree, (void*)LibC.AT_FDCWD, path, (void*)(OpenTreeClone | LibC.O_CLOEXEC)),
                "open_tree", directory);
        }
        var tree = new SafeFileHandle(fd, ownsHandle: true);
        bool added = false;
        userNamespace.DangerousAddRef(ref added);
        try
        {
            var attributes = new MountAttributes { Set = MountAttrIdmap, UserNamespaceFd = (ulong)userNamespace.DangerousGetHandle() };
            byte empty = 0;
            Errno.Check((long)LibC.syscall(SysMountSetattr, (void*)fd, &empty, (void*)AtEmptyPath, &attributes, (void*)sizeof(MountAttributes)),
                "mount_setattr", $"MOUNT_ATTR_IDMAP {directory}");
            return tree;
        }
        catch
        {
            tree.Dispose();
            throw;
        }
        finally
        {
            if (added) userNamespace.DangerousRelease();
        }
    }
}
