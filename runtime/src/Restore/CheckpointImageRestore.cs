using CriShim.Runtime.Containers;
using CriShim.Runtime.Images;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// CreateContainer whose image is a pulled checkpoint image (see <see cref="CheckpointImages"/>): its archive
/// layer, as a file, goes through the same restore as an archive on the host.
/// </summary>
public sealed class CheckpointImageRestore(CheckpointImages checkpointImages, IImageLookup images, ContainerRestore restore, ContainerService containers)
{
    /// <summary>The checkpoint the image <paramref name="image"/> carries; null when it is no pulled checkpoint image.</summary>
    public CheckpointLayer? Find(string image) => checkpointImages.Find(image);

    public async Task<string> CreateAsync(string podId, ContainerConfig request, CheckpointLayer checkpoint, CancellationToken cancellationToken)
    {
        // Before the archive is decompressed, which may take a while for a large one.
        containers.RequireReadyPod(podId);
        string reference = request.Image.Image;
        string restoredFrom = images.Find(reference) is { } image ? RestoredFrom(reference, image) : reference;
        // A decompressed archive is only needed while the restore extracts it; the container keeps what it needs.
        using var archive = await checkpointImages.OpenArchiveAsync(checkpoint, cancellationToken);
        return await restore.CreateFromArchiveAsync(podId, request, archive.Path, cancellationToken, restoredFrom);
    }

    /// <summary>
    /// The checkpoint image as the request named it, pinned to the manifest digest it was pulled by when the
    /// reference has none (a tag may move later): what the restored container's status names as its origin.
    /// </summary>
    public static string RestoredFrom(string reference, StoredImage image)
    {
        if (!ImageReference.TryParse(reference, out var parsed, out _) || parsed.Digest is not null) return reference;
        string prefix = parsed.Name + "@";
        return image.RepoDigests.FirstOrDefault(d => d.StartsWith(prefix, StringComparison.Ordinal)) is { } repoDigest
            ? $"{reference}@{repoDigest[prefix.Length..]}"
            : reference;
    }
}
