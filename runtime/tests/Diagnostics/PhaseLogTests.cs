using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Store;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Diagnostics;

/// <summary>PhaseLog is process-wide: these tests share it one at a time, and give it back off.</summary>
[Collection(nameof(PhaseLogTests))]
public class PhaseLogTests : IDisposable
{
    private readonly Lines _lines = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-phaselog-").FullName;

    public PhaseLogTests() => PhaseLog.Use(new Factory(_lines, LogLevel.Debug));

    public void Dispose()
    {
        PhaseLog.Use(NullLoggerFactory.Instance);
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void ARecordWriteShowsItsWriteAndBothFsyncs()
    {
        string path = Path.Combine(_dir, "record.json");
        AtomicFile.WriteText(path, "{}");
        Assert.Contains(_lines.Of(path), l => l.StartsWith("phase record write " + path + ": ", StringComparison.Ordinal) && l.EndsWith(" ms"));
        Assert.Contains(_lines.Of(path), l => l.StartsWith("phase fsync file " + path + ": ", StringComparison.Ordinal));
        Assert.Contains(_lines.Of(_dir), l => l.StartsWith("phase fsync dir " + _dir + ": ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnExternalProgramShowsItsArgumentsAndItsCniVerb()
    {
        await new ExternalCommand("true", "/bin/true").RunAsync(["--marker", _dir], TimeSpan.FromSeconds(10), CancellationToken.None,
            new Dictionary<string, string?> { ["CNI_COMMAND"] = "DEL" });
        Assert.Contains(_lines.Of(_dir), l => l.StartsWith($"phase exec true CNI DEL --marker {_dir}: ", StringComparison.Ordinal));
    }

    private sealed class Lines
    {
        private readonly List<string> _all = [];
        public void Add(string line) { lock (_all) _all.Add(line); }
        /// <summary>This test's lines (others may write records meanwhile).</summary>
        public List<string> Of(string subject) { lock (_all) return [.. _all.Where(l => l.Contains(subject, StringComparison.Ordinal))]; }
    }

    private sealed class Factory(Lines lines, LogLevel minimum) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new Logger(lines, minimum);
        public void AddProvider(ILoggerProvider provider) { }
        public void Dispose() { }
    }

    private sealed class Logger(Lines lines, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) lines.Add(formatter(state, exception));
        }
    }
}
