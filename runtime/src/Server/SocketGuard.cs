using System.Net.Sockets;

namespace CriShim.Runtime.Server;

/// <summary>
/// Makes the listen socket path ours: refuses when a live daemon holds it, removes a stale one
/// left by a crash. A lock file beside the socket closes the race between two daemons starting at once.
/// </summary>
public sealed class SocketGuard : IDisposable
{
    private readonly FileStream _lock;
    /// <summary>Device, inode and ctime of the socket we bound (an inode number alone may be reused); null until then.</summary>
    private (ulong Device, ulong Inode, (long, uint) ChangeTime)? _bound;

    private SocketGuard(string socketPath, FileStream lockFile)
    {
        SocketPath = socketPath;
        _lock = lockFile;
    }

    public string SocketPath { get; }

    public static SocketGuard Acquire(string socketPath)
    {
        string directory = Path.GetDirectoryName(socketPath)!;
        // The socket's group may reach the socket, not list the directory (often the run root).
        Store.StateDirectory.Create(directory, Store.StateDirectory.GroupTraversable);
        FileStream lockFile;
        try
        {
            // .NET takes an exclusive flock for FileShare.None; the kernel drops it when we die.
            lockFile = new FileStream(socketPath + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"another crishim daemon is already serving {socketPath} (its lock {socketPath}.lock is held)");
        }
        if (File.Exists(socketPath) || IsSocket(socketPath))
        {
            if (IsServed(socketPath))
            {
                lockFile.Dispose();
                throw new InvalidOperationException($"{socketPath} is in use by a live process; not replacing it");
            }
            File.Delete(socketPath);
        }
        return new SocketGuard(socketPath, lockFile);
    }

    private static bool IsSocket(string path)
    {
        try
        {
            return (File.GetAttributes(path) & FileAttributes.Device) != 0 || new FileInfo(path).Exists;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static bool IsServed(string socketPath)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(socketPath));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Once the server listens: 0660 root:root, so only root and the socket's group reach the runtime, and
    /// remembers which socket file is ours.
    /// </summary>
    public void RestrictPermissions()
    {
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        _bound = Identity(SocketPath);
    }

    private static (ulong Device, ulong Inode, (long, uint) ChangeTime)? Identity(string path) =>
        CriShim.NativeInterop.LinkStatus.Of(path) is { } status ? (status.Device, status.Inode, status.ChangeTime) : null;

    /// <summary>Removes the socket only if it is still the one we bound: another daemon may have replaced it since.</summary>
    public void Dispose()
    {
        try
        {
            if (_bound is not null && Identity(SocketPath) == _bound) File.Delete(SocketPath);
        }
        finally
        {
            _lock.Dispose();
        }
    }
}
