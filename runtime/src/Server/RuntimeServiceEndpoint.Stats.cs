using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>Container and pod sandbox stats and metrics, as lists and as streams.</summary>
public sealed partial class RuntimeServiceEndpoint
{
    public override Task<ContainerStatsResponse> ContainerStats(ContainerStatsRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        return Task.FromResult(new ContainerStatsResponse { Stats = stats.Container(request.ContainerId) });
    }

    public override Task<ListContainerStatsResponse> ListContainerStats(ListContainerStatsRequest request, ServerCallContext context)
    {
        var response = new ListContainerStatsResponse();
        response.Stats.Add(stats.ListContainers(request.Filter));
        return Task.FromResult(response);
    }

    public override Task StreamContainerStats(StreamContainerStatsRequest request, IServerStreamWriter<StreamContainerStatsResponse> responseStream,
        ServerCallContext context) =>
        ListBatches.SendAsync(stats.ListContainers(request.Filter), batch => new StreamContainerStatsResponse { ContainerStats = { batch } },
            responseStream, context.CancellationToken);

    public override async Task<PodSandboxStatsResponse> PodSandboxStats(PodSandboxStatsRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        return new PodSandboxStatsResponse { Stats = await stats.PodSandboxAsync(request.PodSandboxId) };
    }

    public override async Task<ListPodSandboxStatsResponse> ListPodSandboxStats(ListPodSandboxStatsRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxStatsResponse();
        response.Stats.Add(await stats.ListPodSandboxesAsync(request.Filter));
        return response;
    }

    public override async Task StreamPodSandboxStats(StreamPodSandboxStatsRequest request, IServerStreamWriter<StreamPodSandboxStatsResponse> responseStream,
        ServerCallContext context) =>
        await ListBatches.SendAsync(await stats.ListPodSandboxesAsync(request.Filter), batch => new StreamPodSandboxStatsResponse { PodSandboxStats = { batch } },
            responseStream, context.CancellationToken);

    public override Task<ListMetricDescriptorsResponse> ListMetricDescriptors(ListMetricDescriptorsRequest request, ServerCallContext context)
    {
        var response = new ListMetricDescriptorsResponse();
        response.Descriptors.Add(stats.MetricDescriptorList());
        return Task.FromResult(response);
    }

    public override async Task<ListPodSandboxMetricsResponse> ListPodSandboxMetrics(ListPodSandboxMetricsRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxMetricsResponse();
        response.PodMetrics.Add(await stats.ListPodSandboxMetricsAsync());
        return response;
    }

    public override async Task StreamPodSandboxMetrics(StreamPodSandboxMetricsRequest request, IServerStreamWriter<StreamPodSandboxMetricsResponse> responseStream,
        ServerCallContext context) =>
        await ListBatches.SendAsync(await stats.ListPodSandboxMetricsAsync(), batch => new StreamPodSandboxMetricsResponse { PodSandboxMetrics = { batch } },
            responseStream, context.CancellationToken);
}
