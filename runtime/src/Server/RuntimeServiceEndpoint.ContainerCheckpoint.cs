using CriShim.Runtime.Metrics;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>CheckpointContainer.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override async Task<CheckpointContainerResponse> CheckpointContainer(CheckpointContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        await DaemonMetrics.ObserveCheckpointAsync("container",
            async () => [await checkpoints.CheckpointAsync(request.ContainerId, request.Location, request.Timeout, context.Deadline, context.CancellationToken)]);
        return new CheckpointContainerResponse();
    }
}
