using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriShim.Runtime.Images;

/// <summary>Media types CriShim reads; anything else in a manifest is refused by name.</summary>
public static class MediaTypes
{
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
    public const string DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";

    /// <summary>The Accept header of a manifest request: every format understood, lists first.</summary>
    public static readonly string[] AcceptedManifests = [OciIndex, DockerManifestList, OciManifest, DockerManifest];

    public static bool IsIndex(string? mediaType) => mediaType is OciIndex or DockerManifestList;
}

/// <summary>An OCI/Docker manifest or index; which one is told by mediaType or by which list is present.</summary>
public sealed class ManifestDocument
{
    public int SchemaVersion { get; set; }
    public string? MediaType { get; set; }
    public Descriptor? Config { get; set; }
    public List<Descriptor>? Layers { get; set; }
    public List<Descriptor>? Manifests { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
}

public sealed class Descriptor
{
    public string MediaType { get; set; } = "";
    public string Digest { get; set; } = "";
    public long Size { get; set; }
    public Platform? Platform { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
}

public sealed class Platform
{
    public string Architecture { get; set; } = "";
    public string Os { get; set; } = "";
    public string? Variant { get; set; }
}

/// <summary>The OCI image config (application/vnd.oci.image.config.v1+json), the parts CriShim uses.</summary>
public sealed class ImageConfigDocument
{
    [JsonPropertyName("architecture")] public string? Architecture { get; set; }
    [JsonPropertyName("os")] public string? Os { get; set; }
    [JsonPropertyName("config")] public ImageExecutionConfig? Config { get; set; }
    [JsonPropertyName("rootfs")] public ImageRootfs? Rootfs { get; set; }
}

public sealed class ImageExecutionConfig
{
    [JsonPropertyName("User")] public string? User { get; set; }
    [JsonPropertyName("Env")] public List<string>? Env { get; set; }
    [JsonPropertyName("Entrypoint")] public List<string>? Entrypoint { get; set; }
    [JsonPropertyName("Cmd")] public List<string>? Cmd { get; set; }
    [JsonPropertyName("WorkingDir")] public string? WorkingDir { get; set; }
    [JsonPropertyName("StopSignal")] public string? StopSignal { get; set; }
    [JsonPropertyName("Volumes")] public Dictionary<string, JsonElement>? Volumes { get; set; }
    [JsonPropertyName("Labels")] public Dictionary<string, string>? Labels { get; set; }
}

public sealed class ImageRootfs
{
    [JsonPropertyName("type")] public string? Type { get; set; }
    [JsonPropertyName("diff_ids")] public List<string>? DiffIds { get; set; }
}

/// <summary>A bearer token endpoint's answer (Docker token spec and OAuth2 both appear in the wild).</summary>
public sealed class TokenResponse
{
    [JsonPropertyName("token")] public string? Token { get; set; }
    [JsonPropertyName("access_token")] public string? AccessToken { get; set; }
    [JsonPropertyName("expires_in")] public int? ExpiresIn { get; set; }
}

/// <summary>The distribution API's error body: {"errors":[{"code":..,"message":..}]}.</summary>
public sealed class RegistryErrorBody
{
    [JsonPropertyName("errors")] public List<RegistryError>? Errors { get; set; }
}

public sealed class RegistryError
{
    [JsonPropertyName("code")] public string? Code { get; set; }
    [JsonPropertyName("message")] public string? Message { get; set; }
}

/// <summary>One image as persisted in images.json.</summary>
public sealed class ImageRecord
{
    public string Id { get; set; } = "";
    public List<string> RepoTags { get; set; } = [];
    public List<string> RepoDigests { get; set; } = [];
    /// <summary>The platform manifest's digest (the repo digest may name an index above it).</summary>
    public string ManifestDigest { get; set; } = "";
    /// <summary>Every blob the image needs kept: index, manifest, config and compressed layers.</summary>
    public List<string> Blobs { get; set; } = [];
    /// <summary>Uncompressed layer digests, bottom first; the names of the unpacked layer dirs.</summary>
    public List<string> DiffIds { get; set; } = [];
    public ulong Size { get; set; }
    public bool Pinned { get; set; }
    public Dictionary<string, string> Annotations { get; set; } = [];
    /// <summary>Set for a checkpoint image: its one layer is the archive, kept as a blob, never unpacked (DiffIds is empty).</summary>
    public CheckpointLayer? Checkpoint { get; set; }
}

/// <summary>The archive layer of a checkpoint image (see <see cref="CheckpointImages"/>).</summary>
public sealed class CheckpointLayer
{
    /// <summary>The checkpointed container's name, from the image's checkpoint annotation.</summary>
    public string ContainerName { get; set; } = "";
    public string Digest { get; set; } = "";
    public string MediaType { get; set; } = "";
    /// <summary>The digest of the archive itself (the decompressed layer), from the image config.</summary>
    public string DiffId { get; set; } = "";
}

public sealed class ImageRecordFile
{
    public int Version { get; set; } = 1;
    public List<ImageRecord> Images { get; set; } = [];
}

/// <summary>Bytes and inodes an unpacked layer occupies, counted while it is written.</summary>
public sealed class LayerUsage
{
    public ulong Bytes { get; set; }
    public ulong Inodes { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ManifestDocument))]
[JsonSerializable(typeof(ImageConfigDocument))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(RegistryErrorBody))]
[JsonSerializable(typeof(ImageRecordFile))]
[JsonSerializable(typeof(LayerUsage))]
internal sealed partial class ImageJsonContext : JsonSerializerContext;
