namespace CriShim.Runtime.Config;

public static class ConfigRegistration
{
    /// <summary>
    /// The sections services take from the container, each on its own: a service is given the sections it reads,
    /// not the whole file (the registration methods that build services by hand pass them theirs).
    /// </summary>
    public static IServiceCollection AddConfigSections(this IServiceCollection services, CriShimConfig config) => services
        .AddSingleton(config.State)
        .AddSingleton(config.Runtime)
        .AddSingleton(config.Checkpoint)
        .AddSingleton(config.Cni)
        .AddSingleton(config.Streaming)
        .AddSingleton(config.Cdi);
}
