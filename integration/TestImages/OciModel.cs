using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriShim.TestImages;

/// <summary>The two manifest dialects a registry serves: OCI, and Docker's schema 2 that predates it.</summary>
public enum ManifestFormat
{
    Oci,
    Docker,
}

public static class MediaTypes
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayerTar = "application/vnd.oci.image.layer.v1.tar";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    public static string Manifest(ManifestFormat format) => format == ManifestFormat.Oci ? OciManifest : DockerManifest;
    public static string Index(ManifestFormat format) => format == ManifestFormat.Oci ? OciIndex : DockerManifestList;
    public static string Config(ManifestFormat format) => format == ManifestFormat.Oci ? OciConfig : DockerConfig;

    public static string Layer(ManifestFormat format, LayerCompression compression) => (format, compression) switch
    {
        (ManifestFormat.Oci, LayerCompression.None) => OciLayerTar,
        (ManifestFormat.Oci, LayerCompression.Gzip) => OciLayerGzip,
        (ManifestFormat.Oci, LayerCompression.Zstd) => OciLayerZstd,
        (ManifestFormat.Docker, LayerCompression.Gzip) => DockerLayerGzip,
        _ => throw new ArgumentException($"{format} manifests have no media type for {compression} layers"),
    };

    /// <summary>Every manifest type, for a registry GET's Accept header.</summary>
    public static readonly string[] AllManifests = [OciManifest, OciIndex, DockerManifest, DockerManifestList];
}

public sealed record Platform(
    [property: JsonPropertyName("architecture")] string Architecture,
    [property: JsonPropertyName("os")] string Os,
    [property: JsonPropertyName("variant"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Variant = null)
{
    public static readonly Platform LinuxAmd64 = new("amd64", "linux");
    public static readonly Platform LinuxArm64 = new("arm64", "linux", "v8");

    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}

public sealed record Descriptor(
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("digest")] string Digest,
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("platform"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Platform? Platform = null);

/// <summary>An empty JSON object, the value type of <c>Volumes</c> and <c>ExposedPorts</c>.</summary>
public sealed record EmptyObject;

/// <summary>The runtime part of an image config (the "config" object), with Docker's field names.</summary>
public sealed record ContainerConfig
{
    public string? User { get; init; }
    public SortedDictionary<string, EmptyObject>? ExposedPorts { get; init; }
    public IReadOnlyList<string>? Env { get; init; }
    public IReadOnlyList<string>? Entrypoint { get; init; }
    public IReadOnlyList<string>? Cmd { get; init; }
    public SortedDictionary<string, EmptyObject>? Volumes { get; init; }
    public string? WorkingDir { get; init; }
    public SortedDictionary<string, string>? Labels { get; init; }
    public string? StopSignal { get; init; }
}

public sealed record RootFs(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("diff_ids")] IReadOnlyList<string> DiffIds);

public sealed record ImageConfigFile(
    [property: JsonPropertyName("created")] DateTimeOffset Created,
    [property: JsonPropertyName("architecture")] string Architecture,
    [property: JsonPropertyName("os")] string Os,
    [property: JsonPropertyName("variant"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Variant,
    [property: JsonPropertyName("config")] ContainerConfig Config,
    [property: JsonPropertyName("rootfs")] RootFs RootFs);

public sealed record ImageManifestFile(
    [property: JsonPropertyName("schemaVersion")] int SchemaVersion,
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("config")] Descriptor Config,
    [property: JsonPropertyName("layers")] IReadOnlyList<Descriptor> Layers,
    [property: JsonPropertyName("annotations"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] SortedDictionary<string, string>? Annotations = null);

public sealed record ImageIndexFile(
    [property: JsonPropertyName("schemaVersion")] int SchemaVersion,
    [property: JsonPropertyName("mediaType")] string MediaType,
    [property: JsonPropertyName("manifests")] IReadOnlyList<Descriptor> Manifests);

[JsonSerializable(typeof(ImageConfigFile))]
[JsonSerializable(typeof(ImageManifestFile))]
[JsonSerializable(typeof(ImageIndexFile))]
public sealed partial class OciJsonContext : JsonSerializerContext
{
    /// <summary>Leaves out nulls and writes '+' in media types as is (the default encoder writes \u002B; valid, but not what Docker or containerd write).</summary>
    public static OciJsonContext Oci { get; } = new(new JsonSerializerOptions
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
