namespace CriShim.TestImages;

/// <summary>What a registry stores under a tag: one image manifest, or an index of several.</summary>
public interface IManifestArtifact
{
    Blob Manifest { get; }
    string MediaType { get; }

    /// <summary>The images behind the manifest: the image itself, or every entry of an index.</summary>
    IReadOnlyList<Image> Images { get; }
}

/// <summary>One single-platform image: its layers, config blob and manifest blob.</summary>
public sealed class Image : IManifestArtifact
{
    /// <summary>Fixed so the config, and so the image id, depends only on content.</summary>
    public static readonly DateTimeOffset Created = DateTimeOffset.UnixEpoch;

    /// <summary>The manifest annotation checkpointctl/buildah-made checkpoint images carry (CRI-O's key).</summary>
    public const string CheckpointNameAnnotation = "io.kubernetes.cri-o.annotations.checkpoint.name";

    private Image(ManifestFormat format, Platform platform, ContainerConfig config, IReadOnlyList<Layer> layers, SortedDictionary<string, string>? annotations = null)
    {
        Format = format;
        Platform = platform;
        ContainerConfig = config;
        Layers = layers;
        var diffIds = layers.Select(layer => layer.DiffId).ToList();
        Config = Blob.FromJson(
            new ImageConfigFile(Created, platform.Architecture, platform.Os, platform.Variant, config, new RootFs("layers", diffIds)),
            OciJsonContext.Oci.ImageConfigFile);
        var manifest = new ImageManifestFile(
            2,
            MediaTypes.Manifest(format),
            Config.Describe(MediaTypes.Config(format)),
            layers.Select(layer => layer.Blob.Describe(MediaTypes.Layer(format, layer.Compression))).ToList(),
            annotations);
        Manifest = Blob.FromJson(manifest, OciJsonContext.Oci.ImageManifestFile);
    }

    public ManifestFormat Format { get; }
    public Platform Platform { get; }
    public ContainerConfig ContainerConfig { get; }
    public IReadOnlyList<Layer> Layers { get; }
    public Blob Config { get; }
    public Blob Manifest { get; }
    public string MediaType => MediaTypes.Manifest(Format);
    IReadOnlyList<Image> IManifestArtifact.Images => [this];

    /// <summary>The image id as the kubelet and crictl show it: the config digest.</summary>
    public string Id => Config.Digest;

    public static Image Create(
        IEnumerable<Layer> layers,
        ContainerConfig config,
        Platform? platform = null,
        ManifestFormat format = ManifestFormat.Oci) =>
        new(format, platform ?? Platform.LinuxAmd64, config, layers.ToList());

    /// <summary>
    /// A checkpoint image as `checkpointctl build` or buildah make one: the archive (read whole) as its single
    /// layer, and the checkpointed container's name in the manifest annotation CRI-O reads.
    /// </summary>
    public static Image Checkpoint(byte[] archive, string containerName, LayerCompression compression = LayerCompression.None) =>
        new(ManifestFormat.Oci, Platform.LinuxAmd64, new ContainerConfig(), [LayerBuilder.Compress(archive, compression)],
            new SortedDictionary<string, string> { [CheckpointNameAnnotation] = containerName });
}

/// <summary>An OCI image index or Docker manifest list over images of different platforms.</summary>
public sealed class ImageIndex : IManifestArtifact
{
    private ImageIndex(ManifestFormat format, IReadOnlyList<Image> images)
    {
        if (images.Any(image => image.Format != format))
            throw new ArgumentException("an index and its images must share one manifest format", nameof(images));
        Format = format;
        Images = images;
        var index = new ImageIndexFile(
            2,
            MediaTypes.Index(format),
            images.Select(image => image.Manifest.Describe(image.MediaType, image.Platform)).ToList());
        Manifest = Blob.FromJson(index, OciJsonContext.Oci.ImageIndexFile);
    }

    public ManifestFormat Format { get; }
    public IReadOnlyList<Image> Images { get; }
    public Blob Manifest { get; }
    public string MediaType => MediaTypes.Index(Format);

    public Image ForPlatform(Platform platform) => Images.Single(image => image.Platform == platform);

    public static ImageIndex Create(IEnumerable<Image> images, ManifestFormat format = ManifestFormat.Oci) =>
        new(format, images.ToList());
}
