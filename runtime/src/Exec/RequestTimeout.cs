namespace CriShim.Runtime.Exec;

/// <summary>A timeout a request gives in seconds, bounded by what the daemon can wait: a .NET timer waits at most uint.MaxValue - 1 ms (about 49 days).</summary>
public static class RequestTimeout
{
    public const long MaxSeconds = (uint.MaxValue - 1L) / 1000;

    /// <summary>The timeout; a negative one, or one longer than <see cref="MaxSeconds"/>, is the caller's mistake.</summary>
    public static TimeSpan FromSeconds(long seconds, string field) =>
        seconds is >= 0 and <= MaxSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new InvalidRequestException($"{field} {seconds} must be between 0 and {MaxSeconds} seconds");
}
