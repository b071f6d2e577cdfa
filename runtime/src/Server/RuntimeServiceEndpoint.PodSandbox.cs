using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox, StreamPodSandboxes.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override async Task<RunPodSandboxResponse> RunPodSandbox(RunPodSandboxRequest request, ServerCallContext context)
    {
        if (request.Config is null) throw new InvalidRequestException("RunPodSandbox needs a config");
        string id = await sandboxes.RunAsync(request.Config, request.RuntimeHandler, context.CancellationToken);
        return new RunPodSandboxResponse { PodSandboxId = id };
    }

    public override async Task<StopPodSandboxResponse> StopPodSandbox(StopPodSandboxRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await sandboxes.StopAsync(request.PodSandboxId, context.CancellationToken);
        return new StopPodSandboxResponse();
    }

    public override async Task<RemovePodSandboxResponse> RemovePodSandbox(RemovePodSandboxRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await sandboxes.RemoveAsync(request.PodSandboxId, context.CancellationToken);
        return new RemovePodSandboxResponse();
    }

    public override Task<PodSandboxStatusResponse> PodSandboxStatus(PodSandboxStatusRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        var record = sandboxes.Get(request.PodSandboxId);
        var response = new PodSandboxStatusResponse { Status = PodSandboxStatusMapper.Status(record) };
        response.ContainersStatuses.Add(containerLookup.CurrentOfPod(record.Id).Select(ContainerStatusMapper.Status));
        if (request.Verbose) response.Info.Add(sandboxes.VerboseInfo(record));
        return Task.FromResult(response);
    }

    public override Task<ListPodSandboxResponse> ListPodSandbox(ListPodSandboxRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxResponse();
        response.Items.Add(PodSandboxItems(request.Filter));
        return Task.FromResult(response);
    }

    public override Task StreamPodSandboxes(StreamPodSandboxesRequest request, IServerStreamWriter<StreamPodSandboxesResponse> responseStream, ServerCallContext context) =>
        ListBatches.SendAsync(PodSandboxItems(request.Filter), batch => new StreamPodSandboxesResponse { PodSandboxes = { batch } },
            responseStream, context.CancellationToken);

    private IEnumerable<PodSandbox> PodSandboxItems(PodSandboxFilter? filter) => sandboxes.List(filter).Select(PodSandboxStatusMapper.ListItem);

    public override async Task<UpdatePodSandboxResourcesResponse> UpdatePodSandboxResources(UpdatePodSandboxResourcesRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await sandboxes.UpdateResourcesAsync(request.PodSandboxId, request.Overhead, request.Resources, context.CancellationToken);
        return new UpdatePodSandboxResourcesResponse();
    }
}
