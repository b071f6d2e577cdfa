using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CriShim.Runtime.Containers;

/// <summary>An image is in use while any container, in any state, was created from it or mounts it as an image volume.</summary>
public sealed class ContainerImageUsage(RecordStore<ContainerRecord> containers) : IImageUsage
{
    public bool IsInUse(string imageId) => containers.All.Any(c => c.ImageId == imageId || c.ImageVolumeIds.Contains(imageId));
}

public static class ContainerServiceRegistration
{
    public static IServiceCollection AddPodAndContainerServices(this IServiceCollection services, CriShimConfig config)
    {
        var paths = new StatePaths(config.State);
        // conmon writes exit files here; clean-up paths expect the dir to exist before any container ran.
        StateDirectory.Create(paths.ExitDir);
        services.AddSingleton(paths);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IIdSource, RandomIdSource>();
        services.AddSingleton<IContainerMonitor>(new Conmon(config.Runtime.Conmon, paths.ExitDir, paths.ConmonSockets));
        services.AddSingleton(sp => new RecordStore<PodSandboxRecord>(paths.Pods, PodSandboxRecordJson.Default.PodSandboxRecord,
            sp.GetRequiredService<ILogger<PodSandboxService>>()));
        services.AddSingleton(sp => new RecordStore<ContainerRecord>(paths.Containers, ContainerRecordJson.Default.ContainerRecord,
            sp.GetRequiredService<ILogger<ContainerService>>()));
        services.AddSingleton<IImageUsage, ContainerImageUsage>();
        services.AddSingleton<PodLocks>();
        services.AddSingleton<ContainerLocks>();
        services.AddSingleton<ContainerExitRecorder>();
        services.AddSingleton<ContainerLookup>();
        services.AddSingleton<ContainerService>();
        services.AddSingleton<ContainerOperations>();
        services.AddSingleton<Restore.ContainerRestore>();
        services.AddSingleton<Restore.CheckpointImageRestore>();
        services.AddSingleton<Restore.PodRestore>();
        services.AddSingleton<Restore.ContainerCreation>();
        services.AddSingleton<PodSandboxService>();
        return services;
    }
}
