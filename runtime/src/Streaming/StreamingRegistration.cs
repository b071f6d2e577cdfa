namespace CriShim.Runtime.Streaming;

public static class StreamingRegistration
{
    /// <summary>The streaming URLs' token cache and the streaming HTTP server (started with the host).</summary>
    public static IServiceCollection AddStreaming(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<StreamingTokenCache>(sp => new StreamingTokenCache(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<StreamingEndpointAddress>();
        services.AddSingleton<StreamingService>();
        services.AddSingleton<StreamingServer>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamingServer>());
        return services;
    }
}
