using System.Net.Sockets;
using System.Text;

namespace CriShim.Runtime.Daemon;

/// <summary>
/// The sd_notify(3) protocol without libsystemd, for a `Type=notify` unit: datagrams such as "READY=1" or
/// "STATUS=..." to the unix socket named by $NOTIFY_SOCKET (a path, or an abstract name written with a
/// leading '@'), and "WATCHDOG=1" every half of $WATCHDOG_USEC when systemd asks for it. Without
/// $NOTIFY_SOCKET every call does nothing. The variables are removed from the daemon's environment once
/// read, as sd_notify's unset_environment does: runc and conmon act on a NOTIFY_SOCKET they inherit.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private const string SocketVariable = "NOTIFY_SOCKET";
    private const string WatchdogVariable = "WATCHDOG_USEC";
    private const string WatchdogPidVariable = "WATCHDOG_PID";

    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;
    private Timer? _watchdog;

    private SystemdNotifier(string? address, TimeSpan? watchdogInterval)
    {
        WatchdogInterval = watchdogInterval;
        if (string.IsNullOrEmpty(address)) return;
        // An abstract socket's name starts with a NUL byte, which $NOTIFY_SOCKET writes as '@'.
        _endpoint = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        // Non-blocking: a systemd that stops reading fills the socket's queue (net.unix.max_dgram_qlen), and a
        // blocking send would then hold a thread per watchdog tick; a notification that does not fit is dropped.
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    }

    /// <summary>Half of the watchdog timeout systemd set for this process, or null when it set none.</summary>
    public TimeSpan? WatchdogInterval { get; }

    public bool Enabled => _socket is not null;

    /// <summary>Reads (and removes) $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID.</summary>
    public static SystemdNotifier FromEnvironment()
    {
        string? address = Environment.GetEnvironmentVariable(SocketVariable);
        string? watchdogUsec = Environment.GetEnvironmentVariable(WatchdogVariable);
        string? watchdogPid = Environment.GetEnvironmentVariable(WatchdogPidVariable);
        foreach (string name in new[] { SocketVariable, WatchdogVariable, WatchdogPidVariable }) Environment.SetEnvironmentVariable(name, null);
        TimeSpan? interval = null;
        // WATCHDOG_PID names the process meant to ping; a variable inherited by another process is not for it.
        bool forThisProcess = string.IsNullOrEmpty(watchdogPid) || watchdogPid == Environment.ProcessId.ToString();
        if (forThisProcess && long.TryParse(watchdogUsec, out long usec) && usec > 0)
        {
            interval = TimeSpan.FromMicroseconds(usec / 2);
        }
        return new SystemdNotifier(address, interval);
    }

    /// <summary>Sends one notification ("KEY=value" lines); a systemd that stopped listening is not the daemon's failure.</summary>
    public void Notify(string state)
    {
        if (_socket is null) return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _endpoint!);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // A watchdog tick racing disposal at exit, too.
        }
    }

    /// <summary>Pings the watchdog every <see cref="WatchdogInterval"/> until <see cref="StopWatchdog"/> or disposal.</summary>
    public void StartWatchdog()
    {
        if (_socket is null || WatchdogInterval is not { } interval) return;
        _watchdog = new Timer(_ => Notify("WATCHDOG=1"), null, TimeSpan.Zero, interval);
    }

    public void StopWatchdog() => _watchdog?.Dispose();

    /// <summary>READY=1 once <paramref name="recovery"/> (the socket already answers) has ended, with the status line.</summary>
    public async Task ReadyAfterAsync(Task recovery, string status)
    {
        try
        {
            await recovery;
        }
        catch (Exception)
        {
            // Recovery logs its own failures and leaves what it could not do for the next start; the daemon serves.
        }
        Notify($"READY=1\nSTATUS={status}");
    }

    public void Dispose()
    {
        StopWatchdog();
        _socket?.Dispose();
    }
}
