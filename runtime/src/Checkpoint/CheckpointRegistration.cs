namespace CriShim.Runtime.Checkpoint;

public static class CheckpointRegistration
{
    public static IServiceCollection AddCheckpointServices(this IServiceCollection services)
    {
        services.AddSingleton<CheckpointPipeline>();
        services.AddSingleton<ContainerCheckpoint>();
        services.AddSingleton<PodCheckpoint>();
        services.AddSingleton<CheckpointRecovery>();
        services.AddSingleton<CheckpointRetention>();
        return services;
    }
}
