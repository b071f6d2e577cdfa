using System.Runtime.InteropServices;
using Tmds.Linux;

namespace CriShim.NativeInterop;

[Flags]
public enum NamespaceKind
{
    Mount = 0x00020000,    // CLONE_NEWNS
    Cgroup = 0x02000000,   // CLONE_NEWCGROUP
    Uts = 0x04000000,      // CLONE_NEWUTS
    Ipc = 0x08000000,      // CLONE_NEWIPC
    User = 0x10000000,     // CLONE_NEWUSER
    Pid = 0x20000000,      // CLONE_NEWPID
    Network = 0x40000000,  // CLONE_NEWNET
}

public static class Namespaces
{
    /// <summary>Moves the calling thread into new namespaces of the given kinds.</summary>
    public static void Unshare(NamespaceKind kinds) =>
        Errno.Check(LibC.unshare((int)kinds), "unshare", kinds.ToString());

    /// <summary>Moves the calling thread into the namespace that <paramref name="namespaceFd"/> refers to.</summary>
    public static void Enter(SafeHandle namespaceFd, NamespaceKind kind)
    {
        bool added = false;
        namespaceFd.DangerousAddRef(ref added);
        try
        {
            Errno.Check(LibC.setns((int)namespaceFd.DangerousGetHandle(), (int)kind), "setns", kind.ToString());
        }
        finally
        {
            if (added) namespaceFd.DangerousRelease();
        }
    }
}
