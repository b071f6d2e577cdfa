using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriShim.Runtime.Checkpoint;

/// <summary>config.dump: the fields of checkpointctl's ContainerConfig.</summary>
public sealed record CheckpointConfigDump(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("rootfsImage")] string RootfsImage,
    [property: JsonPropertyName("rootfsImageRef")] string RootfsImageRef,
    [property: JsonPropertyName("rootfsImageName")] string RootfsImageName,
    [property: JsonPropertyName("runtime")] string Runtime,
    [property: JsonPropertyName("createdTime")] DateTimeOffset CreatedTime,
    [property: JsonPropertyName("checkpointedTime")] DateTimeOffset CheckpointedTime,
    [property: JsonPropertyName("restored")] bool Restored);

/// <summary>One entry of bind.mounts, as CRI-O writes it, so a restore can recreate missing sources.</summary>
public sealed record BindMountDump(
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("destination")] string Destination,
    [property: JsonPropertyName("file_type")] string FileType,
    [property: JsonPropertyName("permissions")] int Permissions);

/// <summary>Written in the work dir before anything is frozen, so a restarted daemon can undo an interrupted checkpoint.</summary>
public sealed record CheckpointInFlight(
    [property: JsonPropertyName("containerId")] string ContainerId,
    [property: JsonPropertyName("runtimeHandler")] string RuntimeHandler,
    [property: JsonPropertyName("tempArchive")] string TempArchive,
    [property: JsonPropertyName("deadline")] DateTimeOffset Deadline);

/// <summary>pod.json: the pod a CheckpointPod captured and the archive of each of its containers.</summary>
/// <param name="PodSandboxConfig">The PodSandboxConfig as protobuf JSON (lossless: protobuf's JsonParser reads it back).</param>
public sealed record PodCheckpointManifest(
    [property: JsonPropertyName("podSandboxId")] string PodSandboxId,
    [property: JsonPropertyName("metadata")] PodCheckpointMetadata Metadata,
    [property: JsonPropertyName("runtimeHandler")] string RuntimeHandler,
    [property: JsonPropertyName("podSandboxConfig")] JsonElement PodSandboxConfig,
    [property: JsonPropertyName("checkpointedTime")] DateTimeOffset CheckpointedTime,
    [property: JsonPropertyName("containers")] List<PodCheckpointContainer> Containers);

public sealed record PodCheckpointMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("namespace")] string Namespace,
    [property: JsonPropertyName("uid")] string Uid,
    [property: JsonPropertyName("attempt")] uint Attempt);

/// <param name="Archive">The archive's file name inside the checkpoint directory.</param>
public sealed record PodCheckpointContainer(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("attempt")] uint Attempt,
    [property: JsonPropertyName("archive")] string Archive,
    [property: JsonPropertyName("bytes")] long Bytes);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(CheckpointConfigDump))]
[JsonSerializable(typeof(List<BindMountDump>))]
[JsonSerializable(typeof(List<string>))]
[JsonSerializable(typeof(CheckpointInFlight))]
[JsonSerializable(typeof(PodCheckpointManifest))]
[JsonSerializable(typeof(CriuDumpOptions))]
internal sealed partial class CheckpointJson : JsonSerializerContext;
