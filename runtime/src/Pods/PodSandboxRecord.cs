using System.Text.Json.Serialization;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>A pod sandbox as persisted: its CRI config and what the daemon set up for it. Immutable: changed only by <see cref="RecordStore{T}.Update"/>.</summary>
public sealed record PodSandboxRecord : IRecord
{
    public required string Id { get; init; }
    /// <summary>The PodSandboxConfig as the kubelet sent it (protobuf bytes).</summary>
    public required byte[] Config { get; init; }
    public required string RuntimeHandler { get; init; }
    public required long CreatedAtNanos { get; init; }
    public bool Ready { get; init; }
    /// <summary>Pinned network namespace; empty for host-network pods.</summary>
    public string NetNsPath { get; init; } = "";
    /// <summary>PID of the infra process (catatonit) that holds the pod's IPC, UTS and PID namespaces.</summary>
    public int InfraPid { get; init; }
    /// <summary>The infra process behind <see cref="InfraPid"/>, recorded at create, so a reused pid or a reboot is never taken for it.</summary>
    public ProcessIdentity? Infra { get; init; }
    public string CgroupParent { get; init; } = "";
    /// <summary>The pod's /dev/shm tmpfs; empty for host-IPC pods.</summary>
    public string ShmPath { get; init; } = "";
    public List<string> Ips { get; init; } = [];
    /// <summary>The pod-level overhead of the last UpdatePodSandboxResources (LinuxContainerResources, protobuf bytes); empty before one.</summary>
    public byte[] Overhead { get; init; } = [];
    /// <summary>The pod-level resources of the last UpdatePodSandboxResources (LinuxContainerResources, protobuf bytes); empty before one.</summary>
    public byte[] Resources { get; init; } = [];

    /// <summary>
    /// Whether the infra process, and with it the pod's namespaces, still lives. Records written before
    /// identities were recorded fall back to the bare pid.
    /// </summary>
    public bool IsInfraAlive() => Infra?.IsAlive() ?? NativeInterop.Processes.IsAlive(InfraPid);

    [JsonIgnore]
    public PodSandboxConfig ConfigMessage => _config ??= PodSandboxConfig.Parser.ParseFrom(Config);

    private PodSandboxConfig? _config;

}

[JsonSerializable(typeof(PodSandboxRecord))]
internal sealed partial class PodSandboxRecordJson : JsonSerializerContext;
