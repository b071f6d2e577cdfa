using System.IO.Compression;
using CriShim.Runtime.Config;
using ZstdSharp;

namespace CriShim.Runtime.Images;

/// <summary>
/// PullImage: resolves the reference to this platform's manifest, fetches the config, then streams
/// each missing layer (bounded in parallel) through verification, decompression and unpacking in one
/// pass, and records the image. Layers and blobs are fetched once however many pulls want them.
/// </summary>
public sealed class ImagePuller(
    RegistryClient registry, ContentStore content, LayerStore layers, ImageStore images, RegistriesConfig config, ILogger<ImagePuller> logger)
    : IDisposable
{
    private const int LayerAttempts = 3;
    // The config is read whole into memory, so its declared size is capped before it is fetched. Real
    // configs are a few KiB (history and labels included); containers/image (CRI-O) caps them at 4 MiB,
    // twice that leaves room for any image they pull while a manifest cannot make us buffer gigabytes.
    private const long MaxConfigBytes = 8 * 1024 * 1024;

    private readonly SingleFlight _fetches = new();
    private readonly CancellationTokenSource _stopping = new();

    private TimeSpan PullTimeout => TimeSpan.FromSeconds(config.PullTimeoutSeconds);

    /// <summary>Pulls <paramref name="reference"/> (PullImage's, or a restore's), timed by outcome in crishim_image_pull_duration_seconds.</summary>
    public Task<StoredImage> PullAsync(
        string reference, RegistryCredentials credentials, IReadOnlyDictionary<string, string> annotations, CancellationToken cancellationToken) =>
        Metrics.DaemonMetrics.ObservePullAsync(() => PullWithinTimeoutAsync(reference, credentials, annotations, cancellationToken));

    private async Task<StoredImage> PullWithinTimeoutAsync(
        string reference, RegistryCredentials credentials, IReadOnlyDictionary<string, string> annotations, CancellationToken cancellationToken)
    {
        var parsed = ImageReference.Parse(reference);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        limit.CancelAfter(PullTimeout);
        try
        {
            return await PullCoreAsync(parsed, credentials, annotations, limit.Token);
        }
        catch (Exception e) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested && !_stopping.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"pull of {parsed} did not finish within {PullTimeout.TotalSeconds:0} s (registries.pull_timeout_seconds); last error: {e.Message}");
        }
    }

    private async Task<StoredImage> PullCoreAsync(
        ImageReference reference, RegistryCredentials credentials, IReadOnlyDictionary<string, string> annotations, CancellationToken cancellationToken)
    {
        var repository = registry.Open(reference, credentials);
        var top = await repository.GetManifestAsync(reference.ManifestReference, cancellationToken);
        if (reference.Digest is not null && top.Digest != reference.Digest)
        {
            throw new InvalidDataException($"the registry answered {reference} with a manifest whose digest is {top.Digest}");
        }
        using var lease = images.Lease();
        var blobs = new List<string> { top.Digest };
        var (document, isIndex) = ImageConfigs.ParseManifest(top, reference);
        var manifestFetched = top;
        // checkpointctl and containerd annotate the index (or its entry), buildah the manifest: all are read.
        var annotationSets = new List<IReadOnlyDictionary<string, string>?> { document.Annotations };
        if (isIndex)
        {
            var chosen = ImageConfigs.SelectPlatform(document, reference);
            annotationSets.Add(chosen.Annotations);
            string digest = ContentDigest.Require(chosen.Digest, $"index entry of {reference}");
            manifestFetched = await repository.GetManifestAsync(digest, cancellationToken);
            if (manifestFetched.Digest != digest)
            {
                throw new InvalidDataException($"the registry answered manifest {digest} of {reference} with content whose digest is {manifestFetched.Digest}");
            }
            (document, isIndex) = ImageConfigs.ParseManifest(manifestFetched, reference);
            if (isIndex) throw new RegistryException($"index {top.Digest} of {reference} points to another index; nested indexes are not supported");
            blobs.Add(digest);
            annotationSets.Add(document.Annotations);
        }
        var configDescriptor = document.Config!;
        string configDigest = ContentDigest.Require(configDescriptor.Digest, $"config of {reference}");
        if (configDescriptor.Size > MaxConfigBytes)
        {
            throw LimitExceededException.Over($"config {configDigest} of {reference} (declared {configDescriptor.Size} bytes)", MaxConfigBytes);
        }
        var layerDescriptors = document.Layers!;
        foreach (var layer in layerDescriptors) ContentDigest.Require(layer.Digest, $"a layer of {reference}");
        blobs.Add(configDigest);
        blobs.AddRange(layerDescriptors.Select(l => l.Digest));
        lease.Add(blobs, []);

        content.Put(top.Digest, top.Content);
        content.Put(manifestFetched.Digest, manifestFetched.Content);
        Metrics.DaemonMetrics.Pulled(top.Content.Length + (ReferenceEquals(manifestFetched, top) ? 0 : manifestFetched.Content.Length));
        await FetchBlobAsync(repository, configDescriptor, cancellationToken);
        var imageConfig = ImageConfigs.Parse(content.ReadAll(configDigest));
        var diffIds = imageConfig.Rootfs?.DiffIds ?? [];
        if (diffIds.Count != layerDescriptors.Count)
        {
            throw new InvalidDataException($"{reference}: the manifest has {layerDescriptors.Count} layers but the config lists {diffIds.Count} diff_ids");
        }
        foreach (string diffId in diffIds) ContentDigest.Require(diffId, $"a diff_id in the config of {reference}");
        annotationSets.Add(imageConfig.Config?.Labels);
        var checkpoint = CheckpointImages.ContainerNameIn(annotationSets) is { } checkpointName
            ? CheckpointImages.Describe(checkpointName, layerDescriptors, diffIds, reference)
            : null;

        if (checkpoint is not null)
        {
            // The archive is restored from, never mounted: its blob is kept as it came, and no layer is unpacked.
            await FetchBlobAsync(repository, layerDescriptors[0], cancellationToken);
        }
        else
        {
            lease.Add([], diffIds);
            await Parallel.ForEachAsync(Enumerable.Range(0, layerDescriptors.Count),
                new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, config.MaxConcurrentDownloads), CancellationToken = cancellationToken },
                async (i, token) => await EnsureLayerAsync(repository, layerDescriptors[i], diffIds[i], token));
        }

        var record = new ImageRecord
        {
            Id = configDigest,
            RepoTags = reference.RepoTag is { } tag ? [tag] : [],
            RepoDigests = [reference.RepoDigest(top.Digest)],
            ManifestDigest = manifestFetched.Digest,
            Blobs = blobs.Distinct().ToList(),
            DiffIds = checkpoint is null ? diffIds : [],
            Size = (ulong)(configDescriptor.Size + layerDescriptors.Sum(l => l.Size)),
            Annotations = new Dictionary<string, string>(annotations),
            Checkpoint = checkpoint,
        };
        // ImageStatus shows a checkpoint image as one, under CRI-O's key, whichever annotation it came with.
        if (checkpoint is not null) record.Annotations[CheckpointImages.CriONameAnnotation] = checkpoint.ContainerName;
        var stored = images.Add(record);
        logger.LogInformation("pulled {Reference} as {Id} ({Layers} layers, {Size} bytes)", reference, configDigest, diffIds.Count, record.Size);
        return stored;
    }

    /// <summary>A blob kept as it came (the config, or a checkpoint image's archive layer) into the store, verified; shared with concurrent pulls.</summary>
    private async Task FetchBlobAsync(RegistryRepository repository, Descriptor descriptor, CancellationToken cancellationToken)
    {
        if (content.Has(descriptor.Digest)) return;
        await SharedAsync("blob " + descriptor.Digest, async token =>
        {
            if (content.Has(descriptor.Digest)) return;
            await using var source = await repository.OpenBlobAsync(descriptor.Digest, token);
            using var ingest = content.BeginIngest(descriptor.Digest, descriptor.Size);
            ingest.Tee(source);
            await ingest.CommitAsync(token);
            Metrics.DaemonMetrics.Pulled(descriptor.Size);
        }, cancellationToken);
    }

    private async Task EnsureLayerAsync(RegistryRepository repository, Descriptor layer, string diffId, CancellationToken cancellationToken)
    {
        if (layers.Has(diffId)) return;
        await SharedAsync("layer " + diffId, async token =>
        {
            for (int attempt = 1; !layers.Has(diffId); attempt++)
            {
                try
                {
                    await UnpackLayerAsync(repository, layer, diffId, token);
                }
                catch (Exception e) when (e is IOException or HttpRequestException && attempt < LayerAttempts && !token.IsCancellationRequested)
                {
                    logger.LogWarning("layer {Digest} of {Reference} failed ({Error}); attempt {Attempt} of {Max}",
                        layer.Digest, repository.Reference, e.Message, attempt + 1, LayerAttempts);
                }
            }
        }, cancellationToken);
    }

    /// <summary>
    /// Download, verify, decompress and unpack in one pass. The blob's bytes go to a temp file while the
    /// layer unpacks into a temp dir; both are kept only when the blob digest and the diff id match.
    /// </summary>
    private async Task UnpackLayerAsync(RegistryRepository repository, Descriptor layer, string diffId, CancellationToken cancellationToken)
    {
        bool haveBlob = content.Has(layer.Digest);
        await using var compressed = haveBlob ? content.OpenRead(layer.Digest) : await repository.OpenBlobAsync(layer.Digest, cancellationToken);
        using var ingest = haveBlob ? null : content.BeginIngest(layer.Digest, layer.Size);
        var source = ingest?.Tee(compressed) ?? compressed;
        using var pending = layers.BeginUnpack();
        await using var tar = Decompress(source, layer);
        using var diff = new HashingReadStream(tar, what: $"layer {layer.Digest}");
        LayerUsage usage;
        try
        {
            usage = await LayerUnpacker.UnpackAsync(diff, pending.DiffDirectory, layer.Size, cancellationToken);
            await diff.DrainAsync(cancellationToken);
        }
        catch (Exception unpackError) when (ingest is not null && unpackError is not OperationCanceledException)
        {
            // A corrupt blob is reported as corrupt, not as whatever its bytes made the decompressor say.
            await ingest.CommitAsync(cancellationToken);
            throw;
        }
        if (ingest is not null) await ingest.CommitAsync(cancellationToken);
        string actualDiffId = diff.Digest();
        if (actualDiffId != diffId)
        {
            throw new InvalidDataException($"layer {layer.Digest} unpacks to content with digest {actualDiffId}, but the image config says {diffId}");
        }
        layers.Commit(pending, diffId, usage);
        if (ingest is not null) Metrics.DaemonMetrics.Pulled(layer.Size);
    }

    private static Stream Decompress(Stream source, Descriptor layer) => layer.MediaType switch
    {
        var type when type.EndsWith("+gzip", StringComparison.Ordinal) || type.EndsWith(".tar.gzip", StringComparison.Ordinal) =>
            new GZipStream(source, CompressionMode.Decompress, leaveOpen: true),
        var type when type.EndsWith("+zstd", StringComparison.Ordinal) => new DecompressionStream(source, leaveOpen: true),
        var type when type.EndsWith(".tar", StringComparison.Ordinal) => new NonClosingStream(source),
        var type => throw new RegistryException($"layer {layer.Digest} has media type {type}, which is not a tar layer CriShim can unpack"),
    };

    /// <summary>Runs shared work under the daemon's lifetime and the pull limit, not under one caller's token.</summary>
    private Task SharedAsync(string key, Func<CancellationToken, Task> work, CancellationToken waiterToken) =>
        _fetches.RunAsync(key, async () =>
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            limit.CancelAfter(PullTimeout);
            await work(limit.Token);
        }, waiterToken);

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    /// <summary>An uncompressed layer is read straight from the source, which its owner disposes.</summary>
    private sealed class NonClosingStream(Stream inner) : Stream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
