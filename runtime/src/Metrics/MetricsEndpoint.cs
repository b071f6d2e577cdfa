using System.Diagnostics.Metrics;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Runtime.V1;

namespace CriShim.Runtime.Metrics;

/// <summary>
/// The opt-in Prometheus endpoint: GET /metrics over plain HTTP/1.1 on metrics.address, beside the CRI's
/// unix socket in the same host. Requests on that listener never reach the gRPC services (which need
/// HTTP/2 and the socket), and /metrics is not served on the socket. Without metrics.address nothing
/// listens and no <see cref="PrometheusExporter"/> exists.
/// </summary>
public static class MetricsEndpoint
{
    public static void Listen(KestrelServerOptions kestrel, MetricsConfig metrics)
    {
        if (ConfigLoader.MetricsEndpoint(metrics) is { } endpoint) kestrel.Listen(endpoint, listen => listen.Protocols = HttpProtocols.Http1);
    }

    public static void AddPrometheusMetrics(this IServiceCollection services, MetricsConfig metrics)
    {
        if (ConfigLoader.MetricsEndpoint(metrics) is null) return;
        services.AddSingleton(_ => new PrometheusExporter(DaemonMetrics.MeterName));
    }

    /// <summary>Serves the metrics listener; call before the gRPC services are mapped.</summary>
    public static void UsePrometheusMetrics(this WebApplication app)
    {
        if (app.Services.GetService<PrometheusExporter>() is not { } exporter) return;
        var containers = app.Services.GetRequiredService<ContainerLookup>();
        var pods = app.Services.GetRequiredService<PodSandboxService>();
        DaemonMetrics.ObserveStores(() => ContainersByState(containers), () => PodsByState(pods));
        // Kestrel gives unix-socket connections no IP address: only the TCP listener is metrics.address.
        app.UseWhen(context => context.Connection.LocalIpAddress is not null, metricsListener => metricsListener.Run(async context =>
        {
            if (context.Request.Path != "/metrics" || !HttpMethods.IsGet(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            context.Response.ContentType = PrometheusExporter.ContentType;
            await context.Response.WriteAsync(exporter.Scrape(), context.RequestAborted);
        }));
    }

    private static IEnumerable<Measurement<long>> ContainersByState(ContainerLookup containers)
    {
        var counts = Enum.GetValues<ContainerState>().ToDictionary(state => state, _ => 0L);
        foreach (var record in containers.List(null)) counts[record.State]++;
        return counts.Select(c => new Measurement<long>(c.Value, new KeyValuePair<string, object?>("state", StateLabel(c.Key.ToString(), "Container"))));
    }

    private static IEnumerable<Measurement<long>> PodsByState(PodSandboxService pods)
    {
        var counts = Enum.GetValues<PodSandboxState>().ToDictionary(state => state, _ => 0L);
        foreach (var record in pods.List(null)) counts[PodSandboxStatusMapper.StateOf(record)]++;
        return counts.Select(c => new Measurement<long>(c.Value, new KeyValuePair<string, object?>("state", StateLabel(c.Key.ToString(), "Sandbox"))));
    }

    /// <summary>ContainerRunning → running, SandboxNotready → notready.</summary>
    private static string StateLabel(string name, string prefix) => name[prefix.Length..].ToLowerInvariant();
}
