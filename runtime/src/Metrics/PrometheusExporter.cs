using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace CriShim.Runtime.Metrics;

/// <summary>
/// Collects one <see cref="Meter"/>'s instruments and writes them in the Prometheus text exposition
/// format (version 0.0.4). Instrument names are the exported names; counters, up-down counters,
/// gauges and histograms (buckets from the instrument's advice) are supported; observable
/// instruments are read at each scrape. Nothing is collected until an exporter exists.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly double[] DefaultBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener = new();
    private readonly List<Family> _families = [];
    private readonly Lock _scrape = new();

    public PrometheusExporter(string meterName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name != meterName) return;
            var family = new Family(instrument);
            lock (_families) _families.Add(family);
            listener.EnableMeasurementEvents(instrument, family);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.Start();
    }

    /// <summary>Every family, sorted by name, with HELP and TYPE lines.</summary>
    public string Scrape()
    {
        lock (_scrape)
        {
            List<Family> families;
            lock (_families) families = [.. _families.OrderBy(f => f.Name, StringComparer.Ordinal)];
            foreach (var family in families) family.BeginObservation();
            _listener.RecordObservableInstruments();
            var text = new StringBuilder();
            foreach (var family in families) family.Write(text);
            return text.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    public static bool IsValidMetricName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':');

    public static bool IsValidLabelName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && !name.StartsWith("__", StringComparison.Ordinal)
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    public static string EscapeLabelValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    public static string EscapeHelp(string help) =>
        help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    public static string FormatValue(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    private enum Kind { Counter, Gauge, Histogram }

    /// <summary>One instrument: its series keyed by their rendered label set.</summary>
    private sealed class Family
    {
        private readonly Kind _kind;
        /// <summary>Observable instruments report whole values at each scrape; the others accumulate.</summary>
        private readonly bool _observable;
        private readonly double[] _buckets = [];
        private readonly string _help;
        private readonly SortedDictionary<string, Series> _series = new(StringComparer.Ordinal);

        public Family(Instrument instrument)
        {
            Name = instrument.Name;
            if (!IsValidMetricName(Name)) throw new InvalidOperationException($"instrument name \"{Name}\" is no valid Prometheus metric name");
            _help = instrument.Description ?? Name;
            var type = instrument.GetType().GetGenericTypeDefinition();
            _observable = instrument.IsObservable;
            _kind = type == typeof(Counter<>) || type == typeof(ObservableCounter<>) ? Kind.Counter
                : type == typeof(Histogram<>) ? Kind.Histogram
                : Kind.Gauge;
            if (_kind == Kind.Counter && !Name.EndsWith("_total", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"counter \"{Name}\" must end in _total");
            }
            if (_kind == Kind.Histogram)
            {
                _buckets = [.. ((instrument as Histogram<double>)?.Advice?.HistogramBucketBoundaries ?? DefaultBuckets).Order()];
            }
        }

        public string Name { get; }

        public void BeginObservation()
        {
            if (!_observable) return;
            lock (_series) _series.Clear();
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string labels = Labels(tags);
            lock (_series)
            {
                if (!_series.TryGetValue(labels, out var series))
                {
                    _series[labels] = series = new Series(_buckets.Length);
                }
                switch (_kind)
                {
                    case Kind.Histogram:
                        int bucket = Array.FindIndex(_buckets, bound => value <= bound);
                        series.Counts[bucket < 0 ? _buckets.Length : bucket]++;
                        series.Sum += value;
                        series.Count++;
                        break;
                    case var _ when _observable:
                        series.Sum = value;
                        break;
                    default:
                        series.Sum += value;
                        break;
                }
            }
        }

        /// <summary>The label set rendered as it is exported, sorted by label name: {a="x",b="y"} (empty without labels).</summary>
        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length == 0) return "";
            var pairs = new List<KeyValuePair<string, object?>>(tags.ToArray());
            pairs.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
            var text = new StringBuilder();
            foreach (var (key, value) in pairs)
            {
                if (!IsValidLabelName(key)) throw new InvalidOperationException($"label name \"{key}\" is no valid Prometheus label name");
                text.Append(text.Length == 0 ? '{' : ',').Append(key).Append("=\"")
                    .Append(EscapeLabelValue(Convert.ToString(value, CultureInfo.InvariantCulture) ?? "")).Append('"');
            }
            return text.Append('}').ToString();
        }

        public void Write(StringBuilder text)
        {
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(_help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(_kind switch { Kind.Counter => "counter", Kind.Gauge => "gauge", _ => "histogram" }).Append('\n');
            lock (_series)
            {
                foreach (var (labels, series) in _series)
                {
                    if (_kind != Kind.Histogram)
                    {
                        text.Append(Name).Append(labels).Append(' ').Append(FormatValue(series.Sum)).Append('\n');
                        continue;
                    }
                    long cumulative = 0;
                    for (int i = 0; i <= _buckets.Length; i++)
                    {
                        cumulative += series.Counts[i];
                        string le = i < _buckets.Length ? FormatValue(_buckets[i]) : "+Inf";
                        string bucketLabels = labels.Length == 0 ? $"{{le=\"{le}\"}}" : $"{labels[..^1]},le=\"{le}\"}}";
                        text.Append(Name).Append("_bucket").Append(bucketLabels).Append(' ').Append(cumulative).Append('\n');
                    }
                    text.Append(Name).Append("_sum").Append(labels).Append(' ').Append(FormatValue(series.Sum)).Append('\n');
                    text.Append(Name).Append("_count").Append(labels).Append(' ').Append(series.Count).Append('\n');
                }
            }
        }
    }

    private sealed class Series(int buckets)
    {
        /// <summary>Per-bucket (not cumulative) counts; the last is the +Inf bucket.</summary>
        public readonly long[] Counts = new long[buckets + 1];
        public double Sum;
        public long Count;
    }
}
