using System.Net.Sockets;
using System.Text;

namespace CriShim.Integration;

/// <summary>
/// `Type=notify` without systemd: a datagram socket stands in for it ($NOTIFY_SOCKET, by path and by abstract
/// name), as systemd reads what the daemon sends.
/// </summary>
public class SystemdNotifyTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReadyOnceServingWatchdogPingsAndStoppingOnSigterm(bool abstractName)
    {
        var dirs = DaemonDirs.Create();
        string address = abstractName ? $"@crishim-it-notify-{Path.GetFileName(dirs.Base)}" : Path.Combine(dirs.Base, "notify.sock");
        using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        systemd.Bind(new UnixDomainSocketEndPoint(abstractName ? "\0" + address[1..] : address));
        var daemon = Daemon.Launch(dirs, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = address, ["WATCHDOG_USEC"] = "400000" });
        try
        {
            var received = new List<string>();
            string ready = await ReceiveUntilAsync(systemd, received, m => m.Contains("READY=1"));
            // READY=1 means served: the socket answers the first call (no retry, a generous limit for a loaded machine).
            await daemon.Runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.Contains($"STATUS=serving CRI v1 on unix://{daemon.SocketPath}", ready);
            Assert.DoesNotContain(received, m => m.Contains("STOPPING=1"));

            // Every 200 ms (half of WATCHDOG_USEC) while it runs.
            int pingsBefore = received.Count(m => m == "WATCHDOG=1");
            await ReceiveUntilAsync(systemd, received, _ => received.Count(m => m == "WATCHDOG=1") >= pingsBefore + 3);

            int exitCode = await daemon.StopAsync();
            Assert.True(exitCode == 0, $"exit {exitCode}:\n{daemon.Output}");
            await ReceiveUntilAsync(systemd, received, m => m.Contains("STOPPING=1"));
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    [Fact]
    public async Task ChildProcessesDoNotInheritTheNotifyVariables()
    {
        var dirs = DaemonDirs.Create();
        string address = Path.Combine(dirs.Base, "notify.sock");
        using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        systemd.Bind(new UnixDomainSocketEndPoint(address));
        // WATCHDOG_PID names another process: the variables are there to be removed, and no pings fill the socket unread.
        var daemon = Daemon.Launch(dirs, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = address, ["WATCHDOG_USEC"] = "400000", ["WATCHDOG_PID"] = "1" });
        try
        {
            await ReceiveUntilAsync(systemd, [], m => m.Contains("READY=1"));
            // runc and conmon act on NOTIFY_SOCKET (runc would wait for the container's own READY=1).
            string podId = await daemon.RunPodAsync(Cri.Pod("notify-children"));
            int conmon = int.Parse(File.ReadAllText(Path.Combine(dirs.Root, "pods", podId, "infra", "conmon.pid")).Trim());
            string environment = File.ReadAllText($"/proc/{conmon}/environ");
            Assert.Contains("PATH=", environment);
            Assert.DoesNotContain("NOTIFY_SOCKET=", environment);
            Assert.DoesNotContain("WATCHDOG_", environment);
            await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    /// <summary>Receives datagrams into <paramref name="received"/> until one satisfies <paramref name="done"/>; returns it.</summary>
    private static async Task<string> ReceiveUntilAsync(Socket socket, List<string> received, Func<string, bool> done)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var buffer = new byte[4096];
        while (true)
        {
            int length;
            try
            {
                length = await socket.ReceiveAsync(buffer, SocketFlags.None, limit.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no such notification within 60 s; received: {string.Join(" | ", received)}");
            }
            string message = Encoding.UTF8.GetString(buffer, 0, length);
            received.Add(message);
            if (done(message)) return message;
        }
    }
}
