using CriShim.Runtime.Containers;
using CriShim.Runtime.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Store;

/// <summary><see cref="RecordStore{T}.Update"/>: the one transaction a record changes through.</summary>
public sealed class RecordStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-records-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private RecordStore<ContainerRecord> Open() => new(_dir, ContainerRecordJson.Default.ContainerRecord, NullLogger.Instance);

    private static ContainerRecord Container(string id) => new()
    {
        Id = id,
        PodId = "pod1",
        Config = [],
        ImageId = "sha256:image",
        ImageName = "image",
        ImageRef = "sha256:image",
        RuntimeHandler = "runc",
        CreatedAtNanos = 1,
        LogPath = "/dev/null",
        StopSignal = "SIGTERM",
    };

    [Fact]
    public async Task ConcurrentUpdatesOfOneIdLoseNothing()
    {
        var store = Open();
        store.Add(Container("c1"));
        const int writers = 8, updatesEach = 8;

        using var start = new ManualResetEventSlim();
        var threads = Enumerable.Range(0, writers).Select(_ => new Thread(() =>
        {
            start.Wait();
            for (int i = 0; i < updatesEach; i++)
            {
                store.Update("c1", current =>
                {
                    // A mutation takes time: another writer of the id must wait, not read the same value.
                    Thread.Sleep(1);
                    return current with { ExitCode = current.ExitCode + 1 };
                });
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        start.Set();
        await Task.Run(() => threads.ForEach(t => t.Join()));

        const int updates = writers * updatesEach;
        Assert.Equal(updates, store.Get("c1")!.ExitCode);
        // What was published is what was persisted.
        Assert.Equal(updates, Open().Get("c1")!.ExitCode);
    }

    [Fact]
    public void AFailedWriteLeavesTheStoredRecordAsItWas()
    {
        var store = Open();
        var before = Container("c1");
        store.Add(before);
        // The record's directory replaced by a file: the atomic write cannot create its temp file.
        Directory.Delete(store.DirectoryOf("c1"), recursive: true);
        File.WriteAllText(store.DirectoryOf("c1"), "");

        Assert.ThrowsAny<IOException>(() => store.Update("c1", current => current with { State = ContainerState.ContainerExited, ExitCode = 137 }));

        Assert.Same(before, store.Get("c1"));
        Assert.Equal(ContainerState.ContainerCreated, store.Get("c1")!.State);
    }

    [Fact]
    public void AnUpdateThatChangesNothingWritesNothingAndAnUnknownIdIsNotFound()
    {
        var store = Open();
        var record = Container("c1");
        store.Add(record);
        string file = Path.Combine(store.DirectoryOf("c1"), "record.json");
        File.Delete(file);

        Assert.Same(record, store.Update("c1", current => current));
        Assert.False(File.Exists(file));
        Assert.Throws<NotFoundException>(() => store.Update("c2", current => current with { ExitCode = 1 }));
    }
}
