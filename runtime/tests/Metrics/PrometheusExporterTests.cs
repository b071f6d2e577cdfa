using System.Diagnostics.Metrics;
using CriShim.Runtime.Metrics;

namespace CriShim.Runtime.Tests.Metrics;

public class PrometheusExporterTests
{
    /// <summary>A meter of the test's own, so other tests' measurements never show up.</summary>
    private static (Meter Meter, PrometheusExporter Exporter) Fresh()
    {
        var meter = new Meter($"test-{Guid.NewGuid():N}");
        return (meter, new PrometheusExporter(meter.Name));
    }

    [Fact]
    public void CountersCarryHelpTypeAndEscapedLabels()
    {
        var (meter, exporter) = Fresh();
        using var _ = meter;
        using var __ = exporter;
        var counter = meter.CreateCounter<long>("t_requests_total", description: "Requests \\ with\na newline.");
        counter.Add(2, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"));
        counter.Add(3, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"));
        counter.Add(1, new KeyValuePair<string, object?>("path", "plain"));

        Assert.Equal("""
            # HELP t_requests_total Requests \\ with\na newline.
            # TYPE t_requests_total counter
            t_requests_total{path="a\"b\\c\nd"} 5
            t_requests_total{path="plain"} 1

            """.ReplaceLineEndings("\n"), exporter.Scrape());
    }

    [Fact]
    public void HistogramsHaveCumulativeBucketsInfSumAndCount()
    {
        var (meter, exporter) = Fresh();
        using var _ = meter;
        using var __ = exporter;
        var histogram = meter.CreateHistogram("t_seconds", "s", "Latency.", tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 1] });
        foreach (double value in new[] { 0.05, 0.1, 0.5, 7 })
        {
            histogram.Record(value, new KeyValuePair<string, object?>("method", "Version"));
        }

        Assert.Equal("""
            # HELP t_seconds Latency.
            # TYPE t_seconds histogram
            t_seconds_bucket{method="Version",le="0.1"} 2
            t_seconds_bucket{method="Version",le="1"} 3
            t_seconds_bucket{method="Version",le="+Inf"} 4
            t_seconds_sum{method="Version"} 7.65
            t_seconds_count{method="Version"} 4

            """.ReplaceLineEndings("\n"), exporter.Scrape());
    }

    [Fact]
    public void ObservableGaugesAreReadAtEachScrapeAndLabelsAreSorted()
    {
        var (meter, exporter) = Fresh();
        using var _ = meter;
        using var __ = exporter;
        var states = new Dictionary<string, long> { ["running"] = 3 };
        meter.CreateObservableGauge("t_containers", () => states.Select(s => new Measurement<long>(s.Value,
            new KeyValuePair<string, object?>("state", s.Key), new KeyValuePair<string, object?>("node", "n1"))), description: "Containers.");

        Assert.Contains("t_containers{node=\"n1\",state=\"running\"} 3\n", exporter.Scrape());
        states = new Dictionary<string, long> { ["exited"] = 1 };
        string second = exporter.Scrape();
        Assert.Contains("t_containers{node=\"n1\",state=\"exited\"} 1\n", second);
        Assert.DoesNotContain("running", second);
    }

    [Fact]
    public void NamesThatPrometheusRefusesAreRefused()
    {
        var (meter, exporter) = Fresh();
        using var _ = meter;
        using var __ = exporter;
        Assert.Throws<InvalidOperationException>(() => meter.CreateCounter<long>("t-bad-name_total"));
        Assert.Throws<InvalidOperationException>(() => meter.CreateCounter<long>("t_counter_without_suffix"));
        var counter = meter.CreateCounter<long>("t_ok_total");
        Assert.Throws<InvalidOperationException>(() => counter.Add(1, new KeyValuePair<string, object?>("__reserved", "x")));
    }

    [Theory]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(0.25, "0.25")]
    [InlineData(1048576d, "1048576")]
    public void ValuesUseTheExpositionSpelling(double value, string text) => Assert.Equal(text, PrometheusExporter.FormatValue(value));
}
