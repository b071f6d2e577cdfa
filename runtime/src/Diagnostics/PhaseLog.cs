using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Diagnostics;

/// <summary>
/// Per-phase timings at debug level, so a debug log shows where each millisecond of a pod or container
/// cycle goes: every external program (conmon, runc|crun verbs, CNI plugin ADD/DEL), network namespaces,
/// mounts, record writes and their fsyncs. One line per phase, logged by "CriShim.Phases" as
/// "phase {Phase} {Subject}: {Milliseconds} ms". Static because the lowest layers (AtomicFile,
/// ExternalCommand) have no logger of their own; the daemon sets it once at start-up. Off (no clock
/// reads beyond a timestamp, no formatting) unless the log level is debug.
/// </summary>
public static class PhaseLog
{
    public const string Category = "CriShim.Phases";

    private static ILogger s_logger = NullLogger.Instance;

    public static void Use(ILoggerFactory factory) => s_logger = factory.CreateLogger(Category);

    public static bool Enabled => s_logger.IsEnabled(LogLevel.Debug);

    /// <summary>Logs a phase that took <paramref name="elapsed"/>; <paramref name="subject"/> names what it worked on (an id, a path).</summary>
    public static void Record(string phase, string subject, TimeSpan elapsed)
    {
        if (Enabled) s_logger.LogDebug("phase {Phase} {Subject}: {Milliseconds:F2} ms", phase, subject, elapsed.TotalMilliseconds);
    }

    /// <summary>Times the phase until the scope is disposed: <c>using (PhaseLog.Time("netns create", id)) { ... }</c>.</summary>
    public static Scope Time(string phase, string subject) => new(phase, subject, Stopwatch.GetTimestamp());

    public readonly struct Scope(string phase, string subject, long started) : IDisposable
    {
        public void Dispose() => Record(phase, subject, Stopwatch.GetElapsedTime(started));
    }
}
