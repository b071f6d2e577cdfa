using System.Net.Sockets;
using CriShim.Runtime.Server;

namespace CriShim.Runtime.Tests.Server;

public sealed class SocketGuardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-socket-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Socket Listen(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        socket.Listen();
        return socket;
    }

    [Fact]
    public void OnExitTheGuardRemovesItsOwnSocket()
    {
        string path = Path.Combine(_dir, "crishim.sock");
        var guard = SocketGuard.Acquire(path);
        using (Listen(path))
        {
            guard.RestrictPermissions();
            guard.Dispose();
        }
        Assert.False(Path.Exists(path));
    }

    [Fact]
    public void OnExitTheGuardLeavesASocketThatAnotherProcessBoundSince()
    {
        string path = Path.Combine(_dir, "crishim.sock");
        var guard = SocketGuard.Acquire(path);
        using (Listen(path)) guard.RestrictPermissions();
        // Someone (an operator, another daemon) replaced the path while we ran.
        File.Delete(path);
        using var other = Listen(path);
        guard.Dispose();
        Assert.True(Path.Exists(path));
    }
}
