using System.Text;
using System.Text.Json;

namespace CriShim.Runtime.Images;

/// <summary>Disk use of one store, as ImageFsInfo reports it.</summary>
public sealed record FileSystemUsage(string Mountpoint, ulong UsedBytes, ulong UsedInodes);

/// <summary>
/// The read and remove side of the ImageService: list, status (with the config for verbose callers),
/// removal with collection of blobs and layers no image or container needs, and disk use from
/// counters kept as content is written.
/// </summary>
public sealed class ImageCatalog(
    ImageStore images, ContentStore content, LayerStore layers, OverlayRootfsService rootfs, IImageUsage usage, ILogger<ImageCatalog> logger)
{
    public IReadOnlyList<StoredImage> List(string? filter) =>
        string.IsNullOrEmpty(filter) ? images.List() : images.Find(filter) is { } image ? [image] : [];

    public StoredImage? Find(string reference) => images.Find(reference);

    /// <summary>ImageStatus(verbose)'s info["info"]: ids, digests, layers and the image config itself, as containerd gives.</summary>
    public string VerboseInfo(StoredImage image)
    {
        var record = images.Record(image.Id) ?? throw new NotFoundException($"image {image.Id} was removed");
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", record.Id);
            json.WriteString("manifestDigest", record.ManifestDigest);
            json.WriteStartArray("diffIds");
            foreach (string diffId in record.DiffIds) json.WriteStringValue(diffId);
            json.WriteEndArray();
            json.WritePropertyName("imageSpec");
            json.WriteRawValue(content.ReadAll(record.Id));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Idempotent: an unknown image is already removed, as the CRI asks.</summary>
    public void Remove(string reference)
    {
        var outcome = images.Remove(reference, usage.IsInUse);
        logger.LogInformation("remove image {Reference}: {Outcome}", reference, outcome);
        if (outcome == ImageStore.Removal.ImageRemoved) CollectGarbage();
    }

    public FileSystemUsage ImageFileSystem() =>
        new(layers.Home, content.UsedBytes + layers.UsedBytes, content.BlobCount + layers.UsedInodes);

    public FileSystemUsage ContainerFileSystem()
    {
        var (bytes, inodes) = rootfs.Usage();
        return new FileSystemUsage(rootfs.Root, bytes, inodes);
    }

    /// <summary>Deletes blobs and layers that no image, pull in progress or container rootfs refers to.</summary>
    private void CollectGarbage() =>
        images.CollectUnreferenced((blobs, diffIds) =>
        {
            diffIds.UnionWith(rootfs.LayersInUse());
            foreach (string digest in content.Digests.Where(d => !blobs.Contains(d)).ToList()) content.Delete(digest);
            foreach (string diffId in layers.DiffIds.Where(d => !diffIds.Contains(d)).ToList()) layers.Delete(diffId);
        });
}
