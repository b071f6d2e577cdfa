using CriShim.Runtime.Checkpoint;
using System.Buffers.Binary;
using System.Net;
using CriShim.Runtime.Restore;
using CriShim.Runtime.Server;

namespace CriShim.Runtime.Tests.Restore;

/// <summary>files.img as CRIU 4.2 writes it: the common and FILES magics, then (u32 size, file_entry) pairs.</summary>
public class CheckpointedConnectionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-connections-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static void Varint(List<byte> to, ulong value)
    {
        for (; value >= 0x80; value >>= 7) to.Add((byte)(value | 0x80));
        to.Add((byte)value);
    }

    private static void Field(List<byte> to, int number, ulong value)
    {
        Varint(to, (ulong)number << 3);
        Varint(to, value);
    }

    private static void Message(List<byte> to, int number, List<byte> message)
    {
        Varint(to, ((ulong)number << 3) | 2);
        Varint(to, (ulong)message.Count);
        to.AddRange(message);
    }

    /// <summary>The u32 words CRIU stores an address as: its bytes read little-endian, four at a time.</summary>
    private static IEnumerable<uint> Words(string address)
    {
        byte[] bytes = IPAddress.Parse(address).GetAddressBytes();
        for (int i = 0; i < bytes.Length; i += 4) yield return BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i));
    }

    /// <summary>A file_entry of type INETSK holding an inet_sk_entry (images/fdinfo.proto, images/sk-inet.proto).</summary>
    private static List<byte> InetSocket(int family, int state, string source, int sourcePort, string destination, int destinationPort, int protocol = 6)
    {
        var socket = new List<byte>();
        Field(socket, 1, 16);
        Field(socket, 2, 4014641);
        Field(socket, 3, (ulong)family);
        Field(socket, 4, 1);
        Field(socket, 5, (ulong)protocol);
        Field(socket, 6, (ulong)state);
        Field(socket, 7, (ulong)sourcePort);
        Field(socket, 8, (ulong)destinationPort);
        Field(socket, 9, 2);
        Field(socket, 10, 0);
        foreach (uint word in Words(source)) Field(socket, 11, word);
        foreach (uint word in Words(destination)) Field(socket, 12, word);
        var file = new List<byte>();
        Field(file, 1, 4);
        Field(file, 2, 16);
        Message(file, 4, socket);
        return file;
    }

    private static List<byte> RegularFile()
    {
        var file = new List<byte>();
        Field(file, 1, 1);
        Field(file, 2, 3);
        Message(file, 3, [0x08, 0x03, 0x12, 0x04, (byte)'/', (byte)'t', (byte)'m', (byte)'p']);
        return file;
    }

    private void FilesImage(params List<byte>[] entries)
    {
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes(0x54564319u));
        bytes.AddRange(BitConverter.GetBytes(0x56303138u));
        foreach (var entry in entries)
        {
            bytes.AddRange(BitConverter.GetBytes((uint)entry.Count));
            bytes.AddRange(entry);
        }
        File.WriteAllBytes(Path.Combine(_dir, "files.img"), [.. bytes]);
    }

    [Fact]
    public void ReadsTheTcpConnectionsAndNotListenersOrOtherFiles()
    {
        // As nc's dual-stack sockets are dumped: AF_INET6 with IPv4-mapped addresses.
        FilesImage(
            RegularFile(),
            InetSocket(10, 10, "::", 9000, "::", 0),
            InetSocket(10, 1, "::ffff:10.126.63.2", 9000, "::ffff:10.126.63.2", 45280),
            InetSocket(2, 1, "10.126.63.2", 45280, "10.126.63.2", 9000),
            InetSocket(2, 1, "10.126.63.2", 5353, "10.126.63.1", 53, protocol: 17),
            InetSocket(2, 8, "127.0.0.1", 8080, "127.0.0.1", 41000));

        var connections = CheckpointedConnections.Read(_dir);

        Assert.Equal(["10.126.63.2:9000 -> 10.126.63.2:45280", "10.126.63.2:45280 -> 10.126.63.2:9000", "127.0.0.1:8080 -> 127.0.0.1:41000"],
            connections.Select(c => c.ToString()));
    }

    [Fact]
    public void AnArchiveWithoutRecordedOptionsIsRestoredWithTcpEstablishedExactlyWhenItHoldsConnections()
    {
        FilesImage(RegularFile(), InetSocket(10, 10, "::", 9000, "::", 0));
        Assert.Equal(new CriuDumpOptions(TcpEstablished: false, ExtUnixSk: false), CheckpointedConnections.InferDumpOptions(CheckpointedConnections.Read(_dir)));
        FilesImage(InetSocket(2, 1, "127.0.0.1", 45280, "127.0.0.1", 9000));
        Assert.Equal(["--tcp-established"], CheckpointedConnections.InferDumpOptions(CheckpointedConnections.Read(_dir)).Arguments());
    }

    [Fact]
    public void ConnectionsOnAnAddressTheNewPodLacksAreAFailedPreconditionNamingBoth()
    {
        FilesImage(InetSocket(2, 1, "10.126.63.2", 45280, "10.126.63.2", 9000), InetSocket(2, 1, "127.0.0.1", 8080, "127.0.0.1", 41000));
        var connections = CheckpointedConnections.Read(_dir);

        var e = Assert.Throws<WrongStateException>(() => CheckpointedConnections.RequireAddresses(connections, ["10.126.64.5"], "/a.tar"));

        Assert.Contains("checkpoint archive /a.tar holds established TCP connections on 10.126.63.2 (10.126.63.2:45280 -> 10.126.63.2:9000)", e.Message);
        Assert.Contains("the pod sandbox it is restored into has 10.126.64.5", e.Message);
        Assert.Contains("without tcp_established", e.Message);
    }

    [Fact]
    public void APodWithTheAddressLoopbackConnectionsAndTheHostNetworkPass()
    {
        FilesImage(InetSocket(2, 1, "10.126.63.2", 45280, "10.0.0.9", 443), InetSocket(10, 1, "::1", 8080, "::1", 41000));
        var connections = CheckpointedConnections.Read(_dir);
        CheckpointedConnections.RequireAddresses(connections, ["10.126.63.2", "fd00::2"], "/a.tar");
        CheckpointedConnections.RequireAddresses(connections, [], "/a.tar");
        FilesImage(InetSocket(2, 1, "127.0.0.1", 45280, "127.0.0.1", 9000));
        CheckpointedConnections.RequireAddresses(CheckpointedConnections.Read(_dir), ["10.126.64.5"], "/a.tar");
    }

    [Fact]
    public void ImagesOfAnotherShapeAreLeftToCriu()
    {
        Assert.Empty(CheckpointedConnections.Read(_dir));
        File.WriteAllBytes(Path.Combine(_dir, "files.img"), [1, 2, 3]);
        Assert.Empty(CheckpointedConnections.Read(_dir));
        var truncated = InetSocket(2, 1, "10.126.63.2", 45280, "10.126.63.2", 9000);
        truncated[^1] = 0x80; // a varint that never ends
        FilesImage(truncated);
        Assert.Empty(CheckpointedConnections.Read(_dir));
        var bytes = File.ReadAllBytes(Path.Combine(_dir, "files.img"));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), uint.MaxValue); // an entry claiming 4 GiB
        File.WriteAllBytes(Path.Combine(_dir, "files.img"), bytes);
        Assert.Empty(CheckpointedConnections.Read(_dir));
    }
}
