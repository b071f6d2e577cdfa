using CriShim.Runtime.Containers;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// CreateContainer's one domain call: as CRI-O, the request's image decides whether the container is restored
/// from a checkpoint archive on the host (an absolute path), restored from a pulled checkpoint image, or created
/// from an ordinary image.
/// </summary>
public sealed class ContainerCreation(ContainerService containers, ContainerRestore archives, CheckpointImageRestore checkpointImages)
{
    public async Task<string> CreateAsync(string podId, ContainerConfig config, CancellationToken cancellationToken)
    {
        string image = config.Image?.Image ?? "";
        if (ContainerRestore.NamesArchive(image)) return await archives.CreateFromArchiveAsync(podId, config, image, cancellationToken);
        if (checkpointImages.Find(image) is { } checkpoint) return await checkpointImages.CreateAsync(podId, config, checkpoint, cancellationToken);
        return await containers.CreateAsync(podId, config, cancellationToken);
    }
}
