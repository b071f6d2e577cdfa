using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Pods;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>
/// runtime.v1.RuntimeService. RPCs not overridden here fall through to the generated base, which
/// answers UNIMPLEMENTED; <see cref="ErrorMappingInterceptor"/> names the method in that answer.
/// </summary>
public sealed partial class RuntimeServiceEndpoint(
    RuntimeStatusService status,
    PodCidrStore podCidr,
    PodSandboxService sandboxes,
    ContainerService containers,
    ContainerLookup containerLookup,
    ContainerOperations containerOperations,
    CriShim.Runtime.Streaming.StreamingService streaming,
    ContainerCheckpoint checkpoints,
    PodCheckpoint podCheckpoints,
    CriShim.Runtime.Stats.StatsService stats,
    CriShim.Runtime.Events.ContainerEventBus events,
    CriShim.Runtime.Restore.ContainerCreation creation,
    CriShim.Runtime.Restore.PodRestore podRestores) : RuntimeService.RuntimeServiceBase
{
    public override Task<VersionResponse> Version(VersionRequest request, ServerCallContext context) =>
        Task.FromResult(status.Version());

    public override Task<StatusResponse> Status(StatusRequest request, ServerCallContext context) =>
        status.StatusAsync(request.Verbose, context.CancellationToken);

    public override Task<RuntimeConfigResponse> RuntimeConfig(RuntimeConfigRequest request, ServerCallContext context) =>
        Task.FromResult(status.RuntimeConfig());

    public override Task<UpdateRuntimeConfigResponse> UpdateRuntimeConfig(UpdateRuntimeConfigRequest request, ServerCallContext context)
    {
        podCidr.Update(request.RuntimeConfig?.NetworkConfig?.PodCidr ?? "");
        return Task.FromResult(new UpdateRuntimeConfigResponse());
    }

    /// <summary>Every RPC naming a pod or container checks the id is there before resolving it.</summary>
    private static void RequireId(string id, string field)
    {
        if (string.IsNullOrEmpty(id)) throw new InvalidRequestException($"{field} must be set");
    }
}
