using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CriShim.Runtime.Network;

public static class PodNetworkRegistration
{
    /// <summary>Registers <see cref="CniPodNetwork"/> as the pod network, replacing any other <see cref="IPodNetwork"/>.</summary>
    public static IServiceCollection AddPodNetwork(this IServiceCollection services)
    {
        services.RemoveAll<IPodNetwork>();
        services.AddSingleton<CniPodNetwork>();
        services.AddSingleton<IPodNetwork>(sp => sp.GetRequiredService<CniPodNetwork>());
        return services;
    }
}
