using System.Collections.Concurrent;

namespace CriShim.Runtime.Stats;

/// <summary>Cumulative CPU time read at a moment.</summary>
public readonly record struct CpuReading(long TimestampNanos, ulong UsageCoreNanos);

/// <summary>
/// usage_nano_cores is the CPU rate since the previous reading of the same container or pod, as
/// containerd computes it: the first reading (and a clock that did not advance) gives 0.
/// </summary>
public sealed class CpuRateTracker
{
    private readonly ConcurrentDictionary<string, CpuReading> _previous = new();

    public ulong NanoCores(string id, CpuReading current)
    {
        bool seen = _previous.TryGetValue(id, out var previous);
        _previous[id] = current;
        return seen ? Rate(previous, current) : 0;
    }

    public static ulong Rate(CpuReading previous, CpuReading current)
    {
        long elapsed = current.TimestampNanos - previous.TimestampNanos;
        if (elapsed <= 0 || current.UsageCoreNanos < previous.UsageCoreNanos) return 0;
        return (ulong)((current.UsageCoreNanos - previous.UsageCoreNanos) / (double)elapsed * 1e9);
    }

    /// <summary>Drops the readings of containers and pods that no longer exist.</summary>
    public void Keep(IReadOnlySet<string> ids)
    {
        foreach (string id in _previous.Keys.Where(id => !ids.Contains(id))) _previous.TryRemove(id, out _);
    }
}
