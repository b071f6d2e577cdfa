using System.Text;
using CriShim.Runtime.Images;

namespace CriShim.Runtime.Tests.Images;

public sealed class ContentStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-content-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task ABlobIsKeptOnlyWhenDigestAndSizeMatch()
    {
        var store = new ContentStore(_root);
        byte[] good = Encoding.UTF8.GetBytes("good content");
        string digest = ContentDigest.Of(good);

        using (var wrong = store.BeginIngest(digest, good.Length))
        {
            wrong.Tee(new MemoryStream(Encoding.UTF8.GetBytes("evil content")));
            var e = await Assert.ThrowsAsync<InvalidDataException>(() => wrong.CommitAsync(CancellationToken.None));
            Assert.Contains(digest, e.Message);
        }
        using (var tooLong = store.BeginIngest(digest, 4))
        {
            tooLong.Tee(new MemoryStream(good));
            await Assert.ThrowsAsync<InvalidDataException>(() => tooLong.CommitAsync(CancellationToken.None));
        }
        Assert.False(store.Has(digest));
        Assert.Empty(Directory.GetFiles(store.IngestDirectory));

        using (var right = store.BeginIngest(digest, good.Length))
        {
            right.Tee(new MemoryStream(good));
            await right.CommitAsync(CancellationToken.None);
        }
        Assert.True(store.Has(digest));
        Assert.Equal(good, store.ReadAll(digest));
        Assert.Equal((ulong)good.Length, store.UsedBytes);
    }

    [Fact]
    public void ReopeningRemovesPartialFilesAndCountsVerifiedBlobs()
    {
        var store = new ContentStore(_root);
        store.Put(ContentDigest.Of("m"u8), "m"u8.ToArray());
        File.WriteAllText(Path.Combine(store.IngestDirectory, "abc.partial"), "half a blob");
        var reopened = new ContentStore(_root);
        Assert.Empty(Directory.GetFileSystemEntries(reopened.IngestDirectory));
        Assert.True(reopened.Has(ContentDigest.Of("m"u8)));
        Assert.Equal(1UL, reopened.BlobCount);
    }
}

public sealed class ImageStoreTests : IDisposable
{
    private const string Config = """{"config":{"User":"1000:1000","Env":["A=1"],"Cmd":["sh"],"Volumes":{"/data":{}}},"rootfs":{"type":"layers","diff_ids":[]}}""";
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-images-").FullName;
    private readonly ContentStore _content;
    private readonly string _id;

    public ImageStoreTests()
    {
        _content = new ContentStore(_root);
        byte[] config = Encoding.UTF8.GetBytes(Config);
        _id = ContentDigest.Of(config);
        _content.Put(_id, config);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private ImageRecord Record(params string[] tags) => new()
    {
        Id = _id,
        RepoTags = [.. tags],
        RepoDigests = ["docker.io/library/app@sha256:" + new string('1', 64)],
        Size = 42,
    };

    [Fact]
    public void FindsByTagDigestIdAndUniqueShortId()
    {
        var store = new ImageStore(_root, _content);
        store.Add(Record("docker.io/library/app:1"));
        string hex = ContentDigest.Hex(_id);
        foreach (string name in new[] { "app:1", "docker.io/library/app:1", "app@sha256:" + new string('1', 64), _id, hex, hex[..12], "sha256:" + hex[..12] })
        {
            Assert.Equal(_id, store.Find(name)?.Id);
        }
        Assert.Null(store.Find("app:2"));
        Assert.Null(store.Find("ab"));
        var image = store.Find("app:1")!;
        Assert.Equal("1000:1000", image.Config.User);
        Assert.Equal(["/data"], image.Config.Volumes);
        Assert.Equal((1000L, ""), ImageConfigs.SplitUser(image.Config.User));
        Assert.Equal((null, "www-data"), ImageConfigs.SplitUser("www-data:www-data"));
    }

    [Fact]
    public void RemovingASharedTagKeepsTheImageAndInUseImagesAreRefused()
    {
        var store = new ImageStore(_root, _content);
        store.Add(Record("docker.io/library/app:1"));
        store.Add(Record("docker.io/library/app:2"));
        Assert.Equal(ImageStore.Removal.TagRemoved, store.Remove("app:1", _ => true));
        Assert.Equal(["docker.io/library/app:2"], store.Find(_id)!.RepoTags);
        var e = Assert.Throws<WrongStateException>(() => store.Remove("app:2", id => id == _id));
        Assert.Contains(_id, e.Message);
        Assert.Equal(ImageStore.Removal.ImageRemoved, store.Remove("app:2", _ => false));
        Assert.Equal(ImageStore.Removal.NotFound, store.Remove("app:2", _ => false));
        Assert.Empty(new ImageStore(_root, _content).List());
    }

    [Fact]
    public void RecordsSurviveReopening()
    {
        new ImageStore(_root, _content).Add(Record("docker.io/library/app:1"));
        var image = Assert.Single(new ImageStore(_root, _content).List());
        Assert.Equal(["docker.io/library/app:1"], image.RepoTags);
        Assert.Equal(42UL, image.Size);
    }
}

public class SingleFlightTests
{
    [Fact]
    public async Task ConcurrentCallersShareOneRunAndALaterCallerRunsAgain()
    {
        var flight = new SingleFlight();
        int runs = 0;
        var release = new TaskCompletionSource();
        Func<Task> work = async () =>
        {
            Interlocked.Increment(ref runs);
            await release.Task;
        };
        var first = flight.RunAsync("k", work, CancellationToken.None);
        var second = flight.RunAsync("k", work, CancellationToken.None);
        release.SetResult();
        await Task.WhenAll(first, second);
        Assert.Equal(1, runs);
        await flight.RunAsync("k", work, CancellationToken.None);
        Assert.Equal(2, runs);
    }

    [Fact]
    public async Task AWaiterThatGivesUpDoesNotCancelTheWork()
    {
        var flight = new SingleFlight();
        var release = new TaskCompletionSource();
        bool finished = false;
        using var impatient = new CancellationTokenSource();
        var abandoned = flight.RunAsync("k", async () => { await release.Task; finished = true; }, impatient.Token);
        var patient = flight.RunAsync("k", () => Task.CompletedTask, CancellationToken.None);
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        release.SetResult();
        await patient;
        Assert.True(finished);
    }
}
