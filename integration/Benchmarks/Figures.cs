namespace CriShim.Integration.Benchmarks;

/// <summary>Median and 95th percentile of a set of timings.</summary>
public static class Figures
{
    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> samples, double fraction)
    {
        var sorted = samples.Order().ToList();
        return sorted[(int)Math.Clamp(Math.Ceiling(fraction * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    public static string Summary(IReadOnlyList<TimeSpan> samples) =>
        $"median {Percentile(samples, 0.5).TotalMilliseconds,8:F1} ms   p95 {Percentile(samples, 0.95).TotalMilliseconds,8:F1} ms   (n={samples.Count})";
}
