using System.Net.Sockets;
using CriShim.NativeInterop;
using CriShim.Runtime.Oci;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// A client of conmon's attach socket (&lt;socket dir&gt;/&lt;container id&gt;/attach, SOCK_SEQPACKET):
/// every packet from conmon is one read of the container's output prefixed by its pipe (2 stdout,
/// 3 stderr); what is sent goes to the container's stdin raw (when conmon holds one). Terminal
/// resizes go to conmon's control FIFO in the bundle ("1 rows cols").
/// </summary>
public static class ConmonAttach
{
    private const byte StdoutPipe = 2;
    private const byte StderrPipe = 3;
    private const int MaxPacket = 8192 + 1;

    public static async Task RunAsync(string socketDir, string bundleDir, RemoteCommandStreams streams, CancellationToken cancellationToken)
    {
        using var socket = await ConnectAsync(socketDir, cancellationToken);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var input = streams.Stdin is { } stdin ? PumpInputAsync(stdin, socket, stop.Token) : Task.CompletedTask;
        var resize = streams.Resizes is { } resizes ? Task.Run(async () =>
        {
            await foreach (var size in resizes.ReadAllAsync(stop.Token)) await ResizeAsync(bundleDir, size, stop.Token);
        }, CancellationToken.None) : Task.CompletedTask;
        try
        {
            byte[] packet = new byte[MaxPacket];
            while (true)
            {
                int read = await socket.ReceiveAsync(packet, SocketFlags.None, cancellationToken);
                if (read <= 0) break;
                if (read == 1) continue;
                var target = packet[0] switch
                {
                    StdoutPipe => streams.Stdout,
                    StderrPipe => streams.Stderr ?? streams.Stdout,
                    _ => null,
                };
                if (target is not null) await target.WriteAsync(packet.AsMemory(1, read - 1), cancellationToken);
            }
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await Task.WhenAll(input, resize);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
            {
            }
        }
    }

    private static async Task<Socket> ConnectAsync(string socketDir, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            // sun_path holds 107 bytes: reach a long directory through an O_PATH handle, as CRI-O does.
            using var directory = DirectoryHandles.OpenPath(socketDir);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(DirectoryHandles.PathThrough(directory, "attach")), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task PumpInputAsync(Stream stdin, Socket socket, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[8192];
        while (true)
        {
            int read = await stdin.ReadAsync(buffer, cancellationToken);
            if (read <= 0)
            {
                // The client's stdin ended: conmon closes the container's stdin on this half-close
                // unless the container keeps it open (stdin_once false), as with CRI-O.
                socket.Shutdown(SocketShutdown.Send);
                return;
            }
            await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken);
        }
    }

    private static async Task ResizeAsync(string bundleDir, TerminalSize size, CancellationToken cancellationToken)
    {
        string control = Oci.Conmon.ControlFifo(bundleDir);
        if (!File.Exists(control)) return;
        await using var pipe = new FileStream(control, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        await pipe.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"1 {size.Height} {size.Width}\n"), cancellationToken);
    }
}
