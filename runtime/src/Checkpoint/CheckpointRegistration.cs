namespace CriShim.Runtime.Checkpoint;

public static class CheckpointRegistration
{
    public static IServiceCollection AddCheckpointServices(this IServiceCollection services)
    {
        services.AddSingleton<ContainerCheckpoint>();
        services.AddSingleton<CheckpointRecovery>();
        return services;
    }
}
