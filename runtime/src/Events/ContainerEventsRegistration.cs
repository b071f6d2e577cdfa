using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Events;

public static class ContainerEventsRegistration
{
    /// <summary>The event bus behind GetContainerEvents, its publisher and the exit watcher.</summary>
    public static IServiceCollection AddContainerEvents(this IServiceCollection services)
    {
        services.AddSingleton(_ => new ContainerEventBus(TimeProvider.System));
        // The pod and container services publish through the publisher, which reads their statuses: lazy breaks the cycle.
        services.AddSingleton(sp => new ContainerEventPublisher(
            sp.GetRequiredService<ContainerEventBus>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<RecordStore<PodSandboxRecord>>(),
            new Lazy<PodSandboxService>(sp.GetRequiredService<PodSandboxService>),
            new Lazy<ContainerService>(sp.GetRequiredService<ContainerService>)));
        services.AddHostedService<ContainerExitWatcher>();
        return services;
    }
}
