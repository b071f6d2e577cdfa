using System.Net.Sockets;
using CriShim.Runtime.Daemon;

namespace CriShim.Runtime.Tests.Daemon;

public sealed class SystemdNotifierTests
{
    [Fact]
    public async Task NotificationsToASocketNoOneReadsAreDroppedInsteadOfBlocking()
    {
        string dir = Directory.CreateTempSubdirectory("crishim-notify-").FullName;
        try
        {
            string path = Path.Combine(dir, "notify");
            using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            systemd.Bind(new UnixDomainSocketEndPoint(path));
            Environment.SetEnvironmentVariable("NOTIFY_SOCKET", path);
            using var notifier = SystemdNotifier.FromEnvironment();
            Assert.True(notifier.Enabled);

            // Far more datagrams than a unix socket queues (net.unix.max_dgram_qlen, the receive buffer).
            var sending = Task.Run(() => { for (int i = 0; i < 5000; i++) notifier.Notify("WATCHDOG=1"); });
            var finished = await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(20)));

            Assert.True(finished == sending, "Notify blocked on a socket whose reader stopped");
            Assert.True(systemd.Available > 0, "nothing was delivered while the queue had room");
        }
        finally
        {
            Environment.SetEnvironmentVariable("NOTIFY_SOCKET", null);
            Directory.Delete(dir, recursive: true);
        }
    }
}
