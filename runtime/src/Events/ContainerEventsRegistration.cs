
namespace CriShim.Runtime.Events;

public static class ContainerEventsRegistration
{
    /// <summary>The event bus behind GetContainerEvents, its publisher and the exit watcher.</summary>
    public static IServiceCollection AddContainerEvents(this IServiceCollection services)
    {
        services.AddSingleton(_ => new ContainerEventBus(TimeProvider.System));
        services.AddSingleton<ContainerEventPublisher>();
        services.AddHostedService<ContainerExitWatcher>();
        return services;
    }
}
