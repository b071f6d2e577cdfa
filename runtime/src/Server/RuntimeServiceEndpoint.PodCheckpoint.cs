using CriShim.Runtime.Metrics;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>CheckpointPod and RestorePod.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override async Task<CheckpointPodResponse> CheckpointPod(CheckpointPodRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await DaemonMetrics.ObserveCheckpointAsync("pod", async () => await podCheckpoints.CheckpointAsync(request, context.Deadline, context.CancellationToken));
        return new CheckpointPodResponse();
    }

    public override Task<RestorePodResponse> RestorePod(RestorePodRequest request, ServerCallContext context) =>
        podRestores.RestoreAsync(request, context.CancellationToken);
}
