using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Images;
using CriShim.Runtime.Metrics;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using CriShim.Runtime.Streaming;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CriShim.Runtime.Server;

/// <summary>Builds and runs the gRPC server on the unix socket.</summary>
public static class DaemonHost
{
    public static async Task<int> RunAsync(CriShimConfig config)
    {
        // Read (and removed from the environment) before any child process starts: runc and conmon act on NOTIFY_SOCKET.
        using var systemd = SystemdNotifier.FromEnvironment();
        systemd.StartWatchdog();
        // The socket first, so a second daemon stops before it touches the state; its directory (often the
        // run root itself) is searchable by the socket's group.
        using var socket = SocketGuard.Acquire(config.Server.Socket);
        StateDirectory.Tighten([config.State.Root, config.State.RunRoot], Path.GetDirectoryName(Path.GetFullPath(config.Server.Socket)));

        // ASP.NET would watch its content root, the working directory (/ under an init system), recursively for
        // appsettings changes: an inotify watch per directory, the state dirs' included. The daemon reads none.
        // Set for the streaming server's host too.
        Environment.SetEnvironmentVariable("ASPNETCORE_hostBuilder__reloadConfigOnChange", "false");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        builder.Logging.SetMinimumLevel(ParseLevel(config.Server.LogLevel));
        // ASP.NET's own request logs would drown the runtime's at info.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc.AspNetCore", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenUnixSocket(config.Server.Socket, listen => listen.Protocols = HttpProtocols.Http2);
            // CRI messages (ListContainers on a busy node, ExecSync output) exceed the 4 MB default.
            kestrel.Limits.MaxRequestBodySize = null;
            MetricsEndpoint.Listen(kestrel, config.Metrics);
        });
        builder.Services.AddGrpc(grpc =>
        {
            // Outermost, so it counts the status code the client gets.
            grpc.Interceptors.Add<RpcMetricsInterceptor>();
            grpc.Interceptors.Add<ErrorMappingInterceptor>();
            grpc.MaxReceiveMessageSize = 16 * 1024 * 1024;
            // An ExecSync answer carries up to 16 MiB each of stdout and stderr.
            grpc.MaxSendMessageSize = 2 * ContainerOperations.ExecSyncOutputLimit + 1024 * 1024;
            grpc.EnableDetailedErrors = false;
        });
        builder.Services.AddSingleton<RuntimeServiceEndpoint>();
        builder.Services.AddSingleton<ImageServiceEndpoint>();
        builder.Services.AddSingleton<CriServices>();
        builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<CriServices>, CriServiceMethodProvider>();
        // SIGTERM gives in-flight calls this long, then cancels them: a StopContainer waiting out a long grace
        // period must not hold the daemon up. Each such call is safe to repeat after the restart, as the
        // kubelet does (a checkpoint cut short is undone by CheckpointRecovery).
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownGrace);
        // The whole file only for the verbose Status that reports it; every other service takes its sections.
        builder.Services.AddSingleton(config);
        builder.Services.AddConfigSections(config);
        builder.Services.AddSingleton<RuntimeHandlers>();
        builder.Services.AddSingleton<ComponentProbe>();
        builder.Services.AddSingleton(new PodCidrStore(config.State.Root));
        builder.Services.AddSingleton<RuntimeStatusService>();
        builder.Services.AddPodAndContainerServices(config);
        Events.ContainerEventsRegistration.AddContainerEvents(builder.Services);
        builder.Services.AddCheckpointServices();
        Network.PodNetworkRegistration.AddPodNetwork(builder.Services);
        builder.Services.AddImageServices(config);
        builder.Services.AddStreaming();
        Stats.StatsRegistration.AddStats(builder.Services);
        builder.Services.AddPrometheusMetrics(config.Metrics);

        var app = builder.Build();
        Diagnostics.PhaseLog.Use(app.Services.GetRequiredService<ILoggerFactory>());
        app.UsePrometheusMetrics();
        app.MapGrpcService<CriServices>();

        var logger = app.Services.GetRequiredService<ILogger<CriShimConfig>>();
        var probe = app.Services.GetRequiredService<ComponentProbe>();
        // A checkpoint cut short by a crash must not leave its container frozen: its container is locked
        // before serving and thawed after, as waiting out an orphaned CRIU dump must not delay the socket.
        var recovery = app.Services.GetRequiredService<CheckpointRecovery>();
        var interrupted = await recovery.LockInterruptedAsync(CancellationToken.None);
        await app.StartAsync();
        socket.RestrictPermissions();
        _ = probe.RunAsync(app.Lifetime.ApplicationStopping);
        var recovering = recovery.RecoverAsync(interrupted, app.Lifetime.ApplicationStopping);
        logger.LogInformation("crishim {Version} serving CRI v1 on unix://{Socket}", RuntimeStatusService.RuntimeVersion, config.Server.Socket);
        if (config.Metrics.Address.Length > 0) logger.LogInformation("serving Prometheus metrics on http://{Address}/metrics", config.Metrics.Address);
        if (interrupted.Count > 0) systemd.Notify($"STATUS=recovering {interrupted.Count} container(s) from interrupted checkpoints");
        _ = systemd.ReadyAfterAsync(recovering, $"serving CRI v1 on unix://{config.Server.Socket}");
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            systemd.StopWatchdog();
            systemd.Notify("STOPPING=1\nSTATUS=stopping");
        });
        await app.WaitForShutdownAsync();
        logger.LogInformation("crishim stopped");
        return 0;
    }

    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(3);

    private static LogLevel ParseLevel(string level) => level switch
    {
        "trace" => LogLevel.Trace,
        "debug" => LogLevel.Debug,
        "warning" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "critical" => LogLevel.Critical,
        _ => LogLevel.Information,
    };
}
