using System.IO.Compression;

namespace CriShim.Runtime.Images;

/// <summary>
/// Checkpoint OCI images, as checkpointctl and buildah make them: one layer that is the checkpoint archive
/// (a tar, plain or gzip), and an annotation naming the checkpointed container. Such an image is pulled like
/// any other, but its layer is kept as a blob and never unpacked as a root filesystem; a restore reads it
/// through <see cref="OpenArchiveAsync"/>.
/// </summary>
public sealed class CheckpointImages(ImageStore images, ContentStore content)
{
    /// <summary>CRI-O's annotation (the one `buildah config --annotation` examples use).</summary>
    public const string CriONameAnnotation = "io.kubernetes.cri-o.annotations.checkpoint.name";

    /// <summary>checkpointctl's (`checkpointctl build`), which containerd read from the index.</summary>
    public const string CriuNameAnnotation = "org.criu.checkpoint.container.name";

    /// <summary>
    /// The largest archive a gzip layer may decompress to: the restore's own cap on an archive. The compressed
    /// size says little (CRIU's pages of a zero-filled heap shrink a thousandfold), so the cap is absolute: a
    /// gzip bomb fills at most this much of the state disk, in ingest/, which start-up empties.
    /// </summary>
    public const long MaxArchiveBytes = Restore.CheckpointArchiveIntake.MaxArchiveBytes;

    /// <summary>
    /// Refuses a checkpoint image where a root filesystem is wanted (a container's image, an image volume): its
    /// layer is an archive to restore, never unpacked. The puller marks every checkpoint image with <see cref="CriONameAnnotation"/>.
    /// </summary>
    /// <param name="what">How the request named it, for the message.</param>
    public static void RequireRootfsImage(StoredImage image, string what)
    {
        if (image.Annotations.TryGetValue(CriONameAnnotation, out string? containerName))
        {
            throw new InvalidRequestException($"{what} is a checkpoint of container \"{containerName}\", not a root filesystem: it can only be restored");
        }
    }

    /// <summary>
    /// The checkpointed container's name when one of <paramref name="annotationSets"/> (index, index entry,
    /// manifest annotations, config labels) carries a checkpoint annotation; null for an ordinary image.
    /// </summary>
    public static string? ContainerNameIn(params IEnumerable<IReadOnlyDictionary<string, string>?> annotationSets)
    {
        foreach (var annotations in annotationSets)
        {
            if (annotations is null) continue;
            foreach (string key in (string[])[CriONameAnnotation, CriuNameAnnotation])
            {
                if (annotations.TryGetValue(key, out string? name)) return name;
            }
        }
        return null;
    }

    /// <summary>
    /// What a pulled checkpoint image records: its single layer, checked to be a tar (plain or gzip) whose
    /// uncompressed digest the config names.
    /// </summary>
    /// <exception cref="RegistryException">The image is no usable checkpoint image.</exception>
    public static CheckpointLayer Describe(string containerName, IReadOnlyList<Descriptor> layers, IReadOnlyList<string> diffIds, ImageReference reference)
    {
        if (layers.Count != 1 || diffIds.Count != 1)
        {
            throw new RegistryException(
                $"{reference} is annotated as a checkpoint of \"{containerName}\" but has {layers.Count} layers; a checkpoint image has exactly one, the archive");
        }
        var layer = layers[0];
        if (!IsGzip(layer.MediaType) && !IsTar(layer.MediaType))
        {
            throw new RegistryException(
                $"the checkpoint layer {layer.Digest} of {reference} has media type {layer.MediaType}; CriShim restores tar or tar+gzip checkpoint layers");
        }
        return new CheckpointLayer { ContainerName = containerName, Digest = layer.Digest, MediaType = layer.MediaType, DiffId = diffIds[0] };
    }

    private static bool IsGzip(string mediaType) =>
        mediaType.EndsWith("+gzip", StringComparison.Ordinal) || mediaType.EndsWith(".tar.gzip", StringComparison.Ordinal);

    private static bool IsTar(string mediaType) => mediaType.EndsWith(".tar", StringComparison.Ordinal);

    /// <summary>The checkpoint that the image <paramref name="reference"/> names carries; null when the store has no
    /// such image or it is an ordinary one.</summary>
    public CheckpointLayer? Find(string reference) =>
        images.Find(reference) is { } image ? images.Record(image.Id)?.Checkpoint : null;

    /// <summary>
    /// The checkpoint archive as a file: the blob itself when the layer is a plain tar, else the layer
    /// decompressed into a 0600 temp file in ingest/ (capped at <see cref="MaxArchiveBytes"/>), which disposing
    /// deletes. Either way its uncompressed digest is the config's diff id, or nothing is returned.
    /// </summary>
    public async Task<CheckpointArchiveFile> OpenArchiveAsync(CheckpointLayer layer, CancellationToken cancellationToken)
    {
        if (!content.Has(layer.Digest)) throw new NotFoundException($"the checkpoint layer {layer.Digest} is no longer in the store");
        // A plain tar's blob digest was verified against the manifest when it was pulled; only its diff id is checked here.
        if (IsTar(layer.MediaType) && layer.Digest == layer.DiffId) return new CheckpointArchiveFile(content.PathOf(layer.Digest), temporary: false);

        string path = Path.Combine(content.IngestDirectory, $"checkpoint-{ContentDigest.Hex(layer.Digest)}.{Guid.NewGuid():N}.tar");
        var archive = new CheckpointArchiveFile(path, temporary: true);
        try
        {
            await using (var blob = content.OpenRead(layer.Digest))
            await using (var tar = IsGzip(layer.MediaType) ? new GZipStream(blob, CompressionMode.Decompress) : blob)
            await using (var output = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                BufferSize = 1 << 16,
            }))
            {
                using var hashing = new HashingReadStream(tar, output, MaxArchiveBytes, $"the checkpoint archive of layer {layer.Digest}");
                try
                {
                    await hashing.DrainAsync(cancellationToken);
                }
                catch (InvalidDataException e) when (hashing.BytesRead > MaxArchiveBytes)
                {
                    throw LimitExceededException.Over($"the checkpoint archive of layer {layer.Digest} ({e.Message})", MaxArchiveBytes);
                }
                string digest = hashing.Digest();
                if (digest != layer.DiffId)
                {
                    throw new InvalidDataException($"the checkpoint layer {layer.Digest} decompresses to content with digest {digest}, but the image config says {layer.DiffId}");
                }
            }
            return archive;
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }
}

/// <summary>A checkpoint archive on disk for as long as a restore reads it.</summary>
public sealed class CheckpointArchiveFile(string path, bool temporary) : IDisposable
{
    public string Path { get; } = path;

    public void Dispose()
    {
        if (temporary) File.Delete(Path);
    }
}
