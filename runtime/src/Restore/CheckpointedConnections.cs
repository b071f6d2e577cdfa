using System.Buffers.Binary;
using System.Net;
using System.Text.RegularExpressions;
using CriShim.Runtime.Checkpoint;

namespace CriShim.Runtime.Restore;

/// <summary>A TCP connection in a checkpoint's CRIU images (dumped with tcp_established).</summary>
public sealed record CheckpointedConnection(IPEndPoint Local, IPEndPoint Remote)
{
    public override string ToString() => $"{Local} -> {Remote}";
}

/// <summary>
/// The established TCP connections a checkpoint holds. CRIU restores a connection (TCP repair) on the local
/// address it had, and the kernel refuses that address in a pod that does not have it (EADDRNOTAVAIL), so a
/// restore into a pod with another IP is refused before anything is created. The connections are read from
/// CRIU's images (files.img, or inetsk.img of CRIU before 3.x's files.img), which every runtime's archive
/// holds, not from metadata only CriShim would write. The images are untrusted: read bounded, and what is not
/// shaped as expected is left to CRIU.
/// </summary>
public static partial class CheckpointedConnections
{
    private const uint CommonMagic = 0x54564319;
    private const uint FilesMagic = 0x56303138;
    private const uint InetSocketsMagic = 0x56443851;

    /// <summary>Far above a socket's entry (a few hundred bytes) or a file's (a path, some KiB).</summary>
    private const int MaxEntryBytes = 1 << 20;

    /// <summary>Far above files.img of any container (one entry per open file); what lies beyond is not read.</summary>
    private const long MaxImageBytes = 64 << 20;

    private const int InetSocketFileType = 4; // fd_types.INETSK (images/fdinfo.proto)
    private const int TcpProtocol = 6;
    private const int TcpClose = 7;
    private const int TcpListen = 10;

    /// <summary>What the caller can do about it, in every message that refuses such a restore.</summary>
    public const string Advice =
        "CRIU restores an established TCP connection (a checkpoint taken with tcp_established) only on the address it had; " +
        "restore it into a pod sandbox that has that IP, or checkpoint the container without tcp_established while it holds no established connections";

    /// <summary>The TCP connections (neither listening nor closed) in the CRIU images of <paramref name="imagesDir"/>.</summary>
    public static IReadOnlyList<CheckpointedConnection> Read(string imagesDir)
    {
        var connections = new List<CheckpointedConnection>();
        foreach (var (name, magic) in new[] { ("files.img", FilesMagic), ("inetsk.img", InetSocketsMagic) })
        {
            foreach (byte[] entry in Entries(Path.Combine(imagesDir, name), magic))
            {
                var socket = magic == FilesMagic ? InetSocketOfFile(entry) : entry;
                if (socket is not null && Connection(socket) is { } connection) connections.Add(connection);
            }
        }
        return connections;
    }

    /// <summary>
    /// The CRIU options an archive that does not record them (CRI-O's, containerd's) was dumped with, as the restore
    /// must repeat them: CRIU dumps an established TCP connection only with tcp_established, and neither runtime
    /// passes ext_unix_sk. Never the daemon's configuration, which says nothing about how another node dumped.
    /// </summary>
    public static CriuDumpOptions InferDumpOptions(IReadOnlyList<CheckpointedConnection> connections) =>
        new(TcpEstablished: connections.Count > 0, ExtUnixSk: false);

    /// <summary>
    /// Refuses (FAILED_PRECONDITION) a restore into a pod whose IPs lack a local address of one of the checkpoint's
    /// connections; loopback connections come back in any pod. A pod without IPs (the host's network) is left to CRIU.
    /// </summary>
    public static void RequireAddresses(IReadOnlyList<CheckpointedConnection> connections, IReadOnlyList<string> podIps, string archivePath)
    {
        var here = podIps.Select(ip => IPAddress.TryParse(ip, out var address) ? address : null).OfType<IPAddress>().ToHashSet();
        if (here.Count == 0) return;
        var stranded = connections.Where(c => !IPAddress.IsLoopback(c.Local.Address) && !here.Contains(c.Local.Address)).ToList();
        if (stranded.Count == 0) return;
        var addresses = stranded.Select(c => c.Local.Address.ToString()).Distinct().Order(StringComparer.Ordinal);
        throw new WrongStateException(
            $"checkpoint archive {archivePath} holds established TCP connections on {string.Join(", ", addresses)} " +
            $"({string.Join(", ", stranded.Take(3))}{(stranded.Count > 3 ? ", ..." : "")}), and the pod sandbox it is restored into has " +
            $"{string.Join(", ", podIps)}: {Advice}");
    }

    /// <summary>CRIU's "inet: Can't bind inet socket (id N): Cannot assign requested address", the same fault found only by CRIU.</summary>
    [GeneratedRegex(@"^inet: Can't bind inet socket .*Cannot assign requested address")]
    private static partial Regex UnbindableSocket();

    /// <summary>CRIU's line saying a restored socket's address is not in this pod's network; null when there is none.</summary>
    public static string? AddressFailureIn(IEnumerable<string> restoreLog) =>
        CriuImageCompatibility.CriuErrors(restoreLog).FirstOrDefault(text => UnbindableSocket().IsMatch(text));

    /// <summary>The entries of a CRIU image: its two magics, then (u32 little-endian size, protobuf message) pairs.</summary>
    private static IEnumerable<byte[]> Entries(string path, uint magic)
    {
        if (!File.Exists(path)) yield break;
        using var file = File.OpenRead(path);
        var word = new byte[4];
        bool Word(out uint value)
        {
            value = 0;
            if (file.ReadAtLeast(word, 4, throwOnEndOfStream: false) != 4) return false;
            value = BinaryPrimitives.ReadUInt32LittleEndian(word);
            return true;
        }
        if (!Word(out uint common) || common != CommonMagic || !Word(out uint own) || own != magic) yield break;
        while (file.Position < MaxImageBytes && Word(out uint size) && size <= MaxEntryBytes)
        {
            var entry = new byte[size];
            if (file.ReadAtLeast(entry, entry.Length, throwOnEndOfStream: false) != entry.Length) yield break;
            yield return entry;
        }
    }

    /// <summary>file_entry's inet_sk_entry (field 4) when its type (field 1) is INETSK.</summary>
    private static byte[]? InetSocketOfFile(byte[] entry)
    {
        ulong type = 0;
        byte[]? socket = null;
        foreach (var field in ProtobufFields.Of(entry))
        {
            if (field.Number == 1 && field.Bytes is null) type = field.Value;
            if (field.Number == 4 && field.Bytes is { } bytes) socket = bytes;
        }
        return type == InetSocketFileType ? socket : null;
    }

    /// <summary>An inet_sk_entry (images/sk-inet.proto) that is a TCP connection; null for any other socket.</summary>
    private static CheckpointedConnection? Connection(byte[] socket)
    {
        ulong protocol = 0, state = 0, sourcePort = 0, destinationPort = 0;
        var source = new List<uint>();
        var destination = new List<uint>();
        foreach (var field in ProtobufFields.Of(socket))
        {
            switch (field.Number)
            {
                case 5: protocol = field.Value; break;
                case 6: state = field.Value; break;
                case 7: sourcePort = field.Value; break;
                case 8: destinationPort = field.Value; break;
                case 11: field.AddWords(source); break;
                case 12: field.AddWords(destination); break;
            }
        }
        if (protocol != TcpProtocol || state is TcpClose or TcpListen || sourcePort > ushort.MaxValue || destinationPort > ushort.MaxValue) return null;
        return Address(source) is { } local && Address(destination) is { } remote
            ? new CheckpointedConnection(new IPEndPoint(local, (int)sourcePort), new IPEndPoint(remote, (int)destinationPort))
            : null;
    }

    /// <summary>CRIU keeps an address as the u32 words of its in-memory bytes: one for IPv4, four for IPv6 (IPv4-mapped ones shown as IPv4).</summary>
    private static IPAddress? Address(List<uint> words)
    {
        if (words.Count is not (1 or 4)) return null;
        var bytes = new byte[words.Count * 4];
        for (int i = 0; i < words.Count; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), words[i]);
        var address = new IPAddress(bytes);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    /// <summary>The top-level fields of a protobuf message; a malformed message ends the enumeration.</summary>
    private static class ProtobufFields
    {
        public readonly record struct Field(int Number, ulong Value, byte[]? Bytes)
        {
            /// <summary>A repeated uint32, as one varint (unpacked) or a packed run of them.</summary>
            public void AddWords(List<uint> words)
            {
                if (Bytes is null)
                {
                    words.Add((uint)Value);
                    return;
                }
                for (int at = 0; at < Bytes.Length && ReadVarint(Bytes, ref at) is { } word;) words.Add((uint)word);
            }
        }

        public static IEnumerable<Field> Of(byte[] message)
        {
            int at = 0;
            while (at < message.Length)
            {
                if (ReadVarint(message, ref at) is not { } key) yield break;
                int number = (int)(key >> 3);
                switch (key & 7)
                {
                    case 0:
                        if (ReadVarint(message, ref at) is not { } value) yield break;
                        yield return new Field(number, value, null);
                        break;
                    case 1:
                        at += 8;
                        break;
                    case 2:
                        if (ReadVarint(message, ref at) is not { } length || length > (ulong)(message.Length - at)) yield break;
                        yield return new Field(number, 0, message[at..(at + (int)length)]);
                        at += (int)length;
                        break;
                    case 5:
                        at += 4;
                        break;
                    default:
                        yield break;
                }
            }
        }

        public static ulong? ReadVarint(byte[] bytes, ref int at)
        {
            ulong value = 0;
            for (int shift = 0; shift < 64 && at < bytes.Length; shift += 7)
            {
                byte b = bytes[at++];
                value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return value;
            }
            return null;
        }
    }
}
