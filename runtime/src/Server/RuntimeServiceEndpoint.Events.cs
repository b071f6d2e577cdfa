using CriShim.Runtime.Events;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>GetContainerEvents (the kubelet's Evented PLEG).</summary>
public sealed partial class RuntimeServiceEndpoint
{
    /// <summary>Streams every container and pod event until the client cancels or the daemon stops.</summary>
    public override async Task GetContainerEvents(GetEventsRequest request, IServerStreamWriter<ContainerEventResponse> responseStream, ServerCallContext context)
    {
        using var subscription = events.Subscribe();
        using var end = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, subscription.Dropped);
        try
        {
            // The headers tell the client that it is subscribed: every event from now on reaches it.
            await context.WriteResponseHeadersAsync([]);
            await foreach (var containerEvent in subscription.Events.ReadAllAsync(end.Token))
            {
                await responseStream.WriteAsync(containerEvent, end.Token);
            }
            // The loop also ends normally when a dropped subscription's channel is complete.
            subscription.Dropped.ThrowIfCancellationRequested();
        }
        catch (OperationCanceledException) when (subscription.Dropped.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"the client fell {ContainerEventBus.BufferSize} events behind and was unsubscribed: call GetContainerEvents again"));
        }
    }
}
