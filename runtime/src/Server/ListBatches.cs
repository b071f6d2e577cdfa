using Grpc.Core;

namespace CriShim.Runtime.Server;

/// <summary>
/// The Stream* list calls (KEP-5825): the items of the matching List call in responses of at most
/// <see cref="BatchSize"/> items each, every response holding at least one; no items, no response.
/// </summary>
public static class ListBatches
{
    /// <summary>Far below the gRPC message limit even for items with many labels and annotations.</summary>
    public const int BatchSize = 500;

    public static async Task SendAsync<TItem, TResponse>(IEnumerable<TItem> items, Func<TItem[], TResponse> toResponse,
        IServerStreamWriter<TResponse> responseStream, CancellationToken cancellationToken)
    {
        foreach (var batch in items.Chunk(BatchSize))
        {
            await responseStream.WriteAsync(toResponse(batch), cancellationToken);
        }
    }
}
