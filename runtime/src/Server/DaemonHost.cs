using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Streaming;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CriShim.Runtime.Server;

/// <summary>Builds and runs the gRPC server on the unix socket.</summary>
public static class DaemonHost
{
    public static async Task<int> RunAsync(CriShimConfig config)
    {
        // The socket first: its directory (often the run root itself) is created 0750.
        using var socket = SocketGuard.Acquire(config.Server.Socket);
        foreach (string dir in new[] { config.State.Root, config.State.RunRoot })
        {
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

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
        });
        builder.Services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<ErrorMappingInterceptor>();
            grpc.MaxReceiveMessageSize = 16 * 1024 * 1024;
            grpc.MaxSendMessageSize = 16 * 1024 * 1024;
            grpc.EnableDetailedErrors = false;
        });
        builder.Services.AddSingleton<RuntimeServiceEndpoint>();
        builder.Services.AddSingleton<ImageServiceEndpoint>();
        builder.Services.AddSingleton<CriServices>();
        builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<CriServices>, CriServiceMethodProvider>();
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton<RuntimeHandlers>();
        builder.Services.AddSingleton<ComponentProbe>();
        builder.Services.AddSingleton(new PodCidrStore(config.State.Root));
        builder.Services.AddSingleton<RuntimeStatusService>();
        builder.Services.AddPodAndContainerServices(config);
        Events.ContainerEventsRegistration.AddContainerEvents(builder.Services);
        builder.Services.AddCheckpointServices();
        Network.PodNetworkRegistration.AddPodNetwork(builder.Services, config);
        builder.Services.AddImageServices(config);
        builder.Services.AddStreaming();
        Stats.StatsRegistration.AddStats(builder.Services);

        var app = builder.Build();
        app.MapGrpcService<CriServices>();

        var logger = app.Services.GetRequiredService<ILogger<CriShimConfig>>();
        var probe = app.Services.GetRequiredService<ComponentProbe>();
        // Before serving: a checkpoint cut short by a crash must not leave its container frozen.
        await app.Services.GetRequiredService<CheckpointRecovery>().RecoverAsync(CancellationToken.None);
        await app.StartAsync();
        socket.RestrictPermissions();
        _ = probe.RunAsync(app.Lifetime.ApplicationStopping);
        logger.LogInformation("crishim {Version} serving CRI v1 on unix://{Socket}", RuntimeStatusService.RuntimeVersion, config.Server.Socket);
        await app.WaitForShutdownAsync();
        logger.LogInformation("crishim stopped");
        return 0;
    }

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
