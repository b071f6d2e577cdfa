using CriShim.Runtime.Images;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// CreateContainer whose image is a pulled checkpoint image (see <see cref="CheckpointImages"/>): its archive
/// layer, as a file, goes through the same restore as an archive on the host.
/// </summary>
public sealed class CheckpointImageRestore(CheckpointImages checkpointImages, ContainerRestore restore)
{
    /// <summary>The checkpoint the image <paramref name="image"/> carries; null when it is no pulled checkpoint image.</summary>
    public CheckpointLayer? Find(string image) => checkpointImages.Find(image);

    public async Task<string> CreateAsync(string podId, ContainerConfig request, CheckpointLayer checkpoint, CancellationToken cancellationToken)
    {
        // A decompressed archive is only needed while the restore extracts it; the container keeps what it needs.
        using var archive = await checkpointImages.OpenArchiveAsync(checkpoint, cancellationToken);
        return await restore.CreateFromArchiveAsync(podId, request, archive.Path, cancellationToken);
    }
}
