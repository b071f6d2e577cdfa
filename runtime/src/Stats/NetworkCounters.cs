using CriShim.NativeInterop;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Stats;

/// <summary>One network interface's cumulative counters.</summary>
public sealed record InterfaceCounters(
    string Name, ulong RxBytes, ulong RxPackets, ulong RxErrors, ulong RxDropped, ulong TxBytes, ulong TxPackets, ulong TxErrors, ulong TxDropped);

/// <summary>The interfaces of a network namespace and their counters, from /proc/net/dev as seen inside it.</summary>
public static class NetworkCounters
{
    /// <summary>A pod's default interface, as CNI_IFNAME names it.</summary>
    public const string DefaultInterface = "eth0";

    /// <summary>
    /// Reads the counters inside the namespace pinned at <paramref name="namespacePath"/>; the thread's own
    /// /proc entry shows its (just entered) namespace, while /proc/self/net shows the daemon's.
    /// </summary>
    public static Task<IReadOnlyList<InterfaceCounters>> ReadAsync(string namespacePath) =>
        NamespaceThreads.RunInNetworkNamespaceAsync(namespacePath, () => Parse(File.ReadAllText("/proc/thread-self/net/dev")));

    /// <summary>
    /// Reads the counters of the namespace <paramref name="process"/> is in, through its /proc entry: no thread and
    /// no namespace switch. Null unless that very process still runs after the read (so a pid reused meanwhile,
    /// whose namespace is another's, is never taken for it).
    /// </summary>
    public static IReadOnlyList<InterfaceCounters>? ReadOf(ProcessIdentity process)
    {
        string? text = PseudoFiles.ReadText($"/proc/{process.Pid}/net/dev");
        return text is not null && process.IsAlive() ? Parse(text) : null;
    }

    /// <summary>Parses /proc/net/dev: two header lines, then "name: 8 receive counters 8 transmit counters".</summary>
    public static IReadOnlyList<InterfaceCounters> Parse(string text)
    {
        var interfaces = new List<InterfaceCounters>();
        foreach (string line in text.Split('\n').Skip(2))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(f => ulong.TryParse(f, out ulong v) ? v : 0).ToArray();
            if (fields.Length < 16) continue;
            interfaces.Add(new InterfaceCounters(line[..colon].Trim(),
                RxBytes: fields[0], RxPackets: fields[1], RxErrors: fields[2], RxDropped: fields[3],
                TxBytes: fields[8], TxPackets: fields[9], TxErrors: fields[10], TxDropped: fields[11]));
        }
        return interfaces;
    }
}
