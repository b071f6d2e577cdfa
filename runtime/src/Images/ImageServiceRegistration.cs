using CriShim.Runtime.Config;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CriShim.Runtime.Images;

/// <summary>Until containers exist nothing uses an image; the container service replaces this.</summary>
public sealed class NoContainersImageUsage : IImageUsage
{
    public bool IsInUse(string imageId) => false;
}

public static class ImageServiceRegistration
{
    /// <summary>
    /// The image service's singletons. The stores open here, at start-up, so partial blobs and layers a
    /// killed pull left in ingest/ are gone before the first request.
    /// </summary>
    public static IServiceCollection AddImageServices(this IServiceCollection services, CriShimConfig config)
    {
        string imagesRoot = Path.Combine(config.State.Root, "images");
        var content = new ContentStore(imagesRoot);
        var layers = new LayerStore(imagesRoot, content.IngestDirectory);
        var images = new ImageStore(imagesRoot, content);
        services.AddSingleton(content);
        services.AddSingleton(layers);
        services.AddSingleton(images);
        services.AddSingleton<IImageLookup>(images);
        services.TryAddSingleton<IImageUsage, NoContainersImageUsage>();
        services.AddSingleton(new RegistryEndpoints(config.Registries));
        services.AddSingleton(provider => new RegistryClient(CreateHttpClient(), provider.GetRequiredService<RegistryEndpoints>(),
            provider.GetRequiredService<ILogger<RegistryClient>>()));
        services.AddSingleton(provider => new ImagePuller(provider.GetRequiredService<RegistryClient>(), content, layers, images,
            config.Registries, provider.GetRequiredService<ILogger<ImagePuller>>()));
        services.AddSingleton(provider => new OverlayRootfsService(config.State.Root, images, layers,
            provider.GetRequiredService<ILogger<OverlayRootfsService>>()));
        services.AddSingleton<IRootfsService>(provider => provider.GetRequiredService<OverlayRootfsService>());
        services.AddSingleton<ImageVolumes>();
        services.AddSingleton<ImageCatalog>();
        services.AddSingleton<CheckpointImages>();
        return services;
    }

    /// <summary>Limits come from the pull's own deadline, so the client itself never times out a long blob.</summary>
    private static HttpClient CreateHttpClient()
    {
        var client = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(30),
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 10,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        client.DefaultRequestHeaders.UserAgent.ParseAdd($"crishim/{Daemon.RuntimeStatusService.RuntimeVersion}");
        return client;
    }
}
