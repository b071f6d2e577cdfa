using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>Exec, Attach and PortForward: each answers with a single-use URL on the streaming server.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override async Task<ExecResponse> Exec(ExecRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        return new ExecResponse { Url = await streaming.ExecUrlAsync(request, context.CancellationToken) };
    }

    public override async Task<AttachResponse> Attach(AttachRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        return new AttachResponse { Url = await streaming.AttachUrlAsync(request, context.CancellationToken) };
    }

    public override async Task<PortForwardResponse> PortForward(PortForwardRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        return new PortForwardResponse { Url = await streaming.PortForwardUrlAsync(request, context.CancellationToken) };
    }
}
