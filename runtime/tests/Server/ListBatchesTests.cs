using CriShim.Runtime.Server;
using Grpc.Core;

namespace CriShim.Runtime.Tests.Server;

public class ListBatchesTests
{
    private sealed class RecordingWriter<T> : IServerStreamWriter<T>
    {
        public List<T> Written { get; } = [];

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(T message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            Written.Add(message);
            return Task.CompletedTask;
        }
    }

    private static async Task<List<int[]>> SendAsync(int count)
    {
        var writer = new RecordingWriter<int[]>();
        await ListBatches.SendAsync(Enumerable.Range(0, count), batch => batch, writer, CancellationToken.None);
        return writer.Written;
    }

    [Fact]
    public async Task ItemsGoOutInOrderInBatchesOfAtMostBatchSize()
    {
        var responses = await SendAsync(2 * ListBatches.BatchSize + 1);
        Assert.Equal([ListBatches.BatchSize, ListBatches.BatchSize, 1], responses.Select(r => r.Length));
        Assert.Equal(Enumerable.Range(0, 2 * ListBatches.BatchSize + 1), responses.SelectMany(r => r));
    }

    [Fact]
    public async Task NoItemsMeansNoResponse()
    {
        Assert.Empty(await SendAsync(0));
        Assert.Single(await SendAsync(1));
    }
}
