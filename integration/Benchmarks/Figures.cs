using System.Globalization;
using System.Text.RegularExpressions;

namespace CriShim.Integration.Benchmarks;

/// <summary>Percentiles of a set of timings, a daemon's resident memory, and its phase timings.</summary>
public static partial class Figures
{
    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> samples, double fraction)
    {
        var sorted = samples.Order().ToList();
        return sorted[(int)Math.Clamp(Math.Ceiling(fraction * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    public static string Summary(IReadOnlyList<TimeSpan> samples) =>
        $"median {Percentile(samples, 0.5).TotalMilliseconds,8:F1} ms   p95 {Percentile(samples, 0.95).TotalMilliseconds,8:F1} ms   (n={samples.Count})";

    /// <summary>The process's resident set (VmRSS), in KiB.</summary>
    public static long RssKiB(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    /// <summary>
    /// The runtime verbs, conmon, and checkpoint, restore and mount phases a daemon logged at debug level
    /// (Diagnostics/PhaseLog), in order: "runc pause 431 ms, checkpoint archive write 2750 ms, ...".
    /// </summary>
    public static string Phases(string log) => string.Join(", ", PhaseLine().Matches(log).Select(m =>
        $"{string.Join(' ', new[] { m.Groups["tool"].Value, m.Groups["verb"].Value }.Where(w => w.Length > 0))} "
        + $"{double.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture):F0} ms"));

    [GeneratedRegex(@"phase (?:exec (?<tool>runc|crun) --root \S+ (?<verb>\w+)[^\n]*?|exec (?<tool>conmon)[^\n]*?|(?<verb>(?:checkpoint|restore|mount|unmount) [a-z ]+?) \S+): (?<ms>[\d.]+) ms")]
    private static partial Regex PhaseLine();
}
