using CriShim.Runtime.Containers;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>Container lifecycle, status, listing, resources and logs.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override async Task<CreateContainerResponse> CreateContainer(CreateContainerRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        if (request.Config is null) throw new InvalidRequestException("CreateContainer needs a config");
        return new CreateContainerResponse { ContainerId = await creation.CreateAsync(request.PodSandboxId, request.Config, context.CancellationToken) };
    }

    public override async Task<StartContainerResponse> StartContainer(StartContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        await containers.StartAsync(request.ContainerId, context.CancellationToken);
        return new StartContainerResponse();
    }

    public override async Task<StopContainerResponse> StopContainer(StopContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Timeout < 0) throw new InvalidRequestException("timeout must not be negative");
        await containers.StopAsync(request.ContainerId, request.Timeout, context.CancellationToken);
        return new StopContainerResponse();
    }

    public override async Task<RemoveContainerResponse> RemoveContainer(RemoveContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        await containers.RemoveAsync(request.ContainerId, context.CancellationToken);
        return new RemoveContainerResponse();
    }

    public override Task<ContainerStatusResponse> ContainerStatus(ContainerStatusRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        var record = containerLookup.Get(request.ContainerId);
        var response = new ContainerStatusResponse { Status = ContainerStatusMapper.Status(record) };
        if (request.Verbose) response.Info.Add(containerLookup.VerboseInfo(record));
        return Task.FromResult(response);
    }

    public override Task<ListContainersResponse> ListContainers(ListContainersRequest request, ServerCallContext context)
    {
        var response = new ListContainersResponse();
        response.Containers.Add(ContainerItems(request.Filter));
        return Task.FromResult(response);
    }

    public override Task StreamContainers(StreamContainersRequest request, IServerStreamWriter<StreamContainersResponse> responseStream, ServerCallContext context) =>
        ListBatches.SendAsync(ContainerItems(request.Filter), batch => new StreamContainersResponse { Containers = { batch } },
            responseStream, context.CancellationToken);

    private IEnumerable<Container> ContainerItems(ContainerFilter? filter) => containerLookup.List(filter).Select(ContainerStatusMapper.ListItem);

    public override async Task<UpdateContainerResourcesResponse> UpdateContainerResources(UpdateContainerResourcesRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Linux is null) throw new InvalidRequestException("UpdateContainerResources needs linux resources");
        await containerOperations.UpdateResourcesAsync(request.ContainerId, request.Linux, context.CancellationToken);
        return new UpdateContainerResourcesResponse();
    }

    public override async Task<ReopenContainerLogResponse> ReopenContainerLog(ReopenContainerLogRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        await containerOperations.ReopenLogAsync(request.ContainerId, context.CancellationToken);
        return new ReopenContainerLogResponse();
    }

    public override Task<ExecSyncResponse> ExecSync(ExecSyncRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        return containerOperations.ExecSyncAsync(request.ContainerId, request.Cmd, request.Timeout, context.CancellationToken);
    }
}
