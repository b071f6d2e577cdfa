using System.Text.Json.Serialization;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>A container as persisted: its CRI config, image, and lifecycle facts. Immutable: changed only by <see cref="RecordStore{T}.Update"/>.</summary>
public sealed record ContainerRecord : IRecord
{
    public required string Id { get; init; }
    public required string PodId { get; init; }
    /// <summary>The ContainerConfig as the kubelet sent it (protobuf bytes).</summary>
    public required byte[] Config { get; init; }
    public required string ImageId { get; init; }
    /// <summary>The image as the kubelet named it, for ContainerStatus.image.</summary>
    public required string ImageName { get; init; }
    /// <summary>A repo digest of the image (or its id), for ContainerStatus.image_ref.</summary>
    public required string ImageRef { get; init; }
    /// <summary>Images mounted as image volumes (KEP-4639): in use while the container exists, like <see cref="ImageId"/>.</summary>
    public string[] ImageVolumeIds { get; init; } = [];
    public required string RuntimeHandler { get; init; }
    public required long CreatedAtNanos { get; init; }
    public required string LogPath { get; init; }
    public required string StopSignal { get; init; }
    public ContainerState State { get; init; } = ContainerState.ContainerCreated;
    public long StartedAtNanos { get; init; }
    /// <summary>
    /// Set by StartContainer (through <see cref="RecordStore{T}.Update"/>) before it launches the runtime; the write
    /// that records the start's outcome clears it. Found set under the container's lock, the start was cut short by a
    /// daemon kill -9: <see cref="InterruptedStart"/> settles it from the runtime's own state.
    /// </summary>
    public long StartingAtNanos { get; init; }
    public long FinishedAtNanos { get; init; }
    public int ExitCode { get; init; }
    public string Reason { get; init; } = "";
    public string Message { get; init; } = "";
    public int Pid { get; init; }
    /// <summary>The init process behind <see cref="Pid"/>, recorded at create, so a reused pid or a reboot is never taken for it.</summary>
    public ProcessIdentity? Init { get; init; }
    /// <summary>The container's conmon, which writes the exit file: once it is gone, no exit file will come.</summary>
    public ProcessIdentity? Monitor { get; init; }
    /// <summary>The identity the container's first process runs with, once resolved from the image.</summary>
    public ContainerIdentity? User { get; init; }
    /// <summary>The current LinuxContainerResources (after UpdateContainerResources), protobuf bytes.</summary>
    public byte[] Resources { get; init; } = [];
    /// <summary>Set when the container is created from a checkpoint: StartContainer restores it with CRIU instead of starting it.</summary>
    public ContainerRestoreState? Restore { get; init; }

    /// <summary>
    /// Whether the container's init process still runs. Records written before identities were
    /// recorded fall back to the bare pid.
    /// </summary>
    public bool IsInitAlive() => Init?.IsAlive() ?? NativeInterop.Processes.IsAlive(Pid);

    [JsonIgnore]
    public ContainerConfig ConfigMessage => _config ??= ContainerConfig.Parser.ParseFrom(Config);

    private ContainerConfig? _config;
}

/// <summary>
/// Where a restored container came from and where its CRIU images are until StartContainer restored it (its StartedAt
/// is when). Kept afterwards: a later checkpoint says the container was restored.
/// </summary>
/// <param name="DumpOptions">The CRIU options of the dump, which the restore repeats (null in records written before they were kept).</param>
public sealed record ContainerRestoreState(string Archive, string ImagesDir, string CheckpointedContainerId,
    Checkpoint.CriuDumpOptions? DumpOptions = null)
{
    /// <summary>
    /// Once the restore succeeded its CRIU images are not needed again, and they are as large as the container's memory.
    /// Until then they stay, so a restore that did not happen can be tried again.
    /// </summary>
    public void DeleteImages()
    {
        if (Directory.Exists(ImagesDir)) Directory.Delete(ImagesDir, recursive: true);
    }
}

/// <summary>ContainerStatus.user: uid, gid and every group the process holds (the gid included, as `id -G`).</summary>
public sealed record ContainerIdentity(long Uid, long Gid, long[] SupplementalGroups);

[JsonSerializable(typeof(ContainerRecord))]
internal sealed partial class ContainerRecordJson : JsonSerializerContext;
