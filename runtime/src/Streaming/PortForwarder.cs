using System.Net;
using System.Net.Sockets;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// Connects to a port on the pod's loopback: inside the pod's pinned network namespace (entered on a
/// throwaway thread, so the socket belongs to that namespace), or on the host for host-network pods.
/// </summary>
public static class PortForwarder
{
    public static async Task<Socket> ConnectAsync(string netNsPath, int port, CancellationToken cancellationToken)
    {
        if (port is <= 0 or > 65535) throw new InvalidRequestException($"invalid port {port}");
        if (netNsPath.Length == 0) return await ConnectLoopbackAsync(port, cancellationToken);
        return await NamespaceThreads.RunInNetworkNamespaceAsync(netNsPath, () =>
            ConnectLoopbackAsync(port, cancellationToken).GetAwaiter().GetResult());
    }

    private static async Task<Socket> ConnectLoopbackAsync(int port, CancellationToken cancellationToken)
    {
        SocketException? failure = null;
        foreach (var address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                limit.CancelAfter(TimeSpan.FromSeconds(10));
                await socket.ConnectAsync(new IPEndPoint(address, port), limit.Token);
                socket.NoDelay = true;
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failure ??= e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new IOException($"failed to connect to localhost:{port} in the pod: {failure!.Message}", failure);
    }

    /// <summary>Copies both ways until both directions end; a half-close is passed on as a shutdown.</summary>
    public static async Task RelayAsync(Socket target, Stream fromClient, Stream toClient, Func<ValueTask> toClientDone, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var upstream = Task.Run(async () =>
        {
            byte[] buffer = new byte[32 * 1024];
            try
            {
                while (true)
                {
                    int read = await fromClient.ReadAsync(buffer, stop.Token);
                    if (read <= 0) break;
                    await target.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, stop.Token);
                }
                target.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }, CancellationToken.None);
        byte[] buffer = new byte[32 * 1024];
        try
        {
            while (true)
            {
                int read = await target.ReceiveAsync(buffer, SocketFlags.None, stop.Token);
                if (read <= 0) break;
                await toClient.WriteAsync(buffer.AsMemory(0, read), stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        await toClientDone();
        // The target closed: the client's remaining input has nowhere to go.
        await Task.WhenAny(upstream, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
        await stop.CancelAsync();
        await upstream;
    }
}
