using System.Formats.Tar;
using System.Text;
using CriShim.Runtime.Images;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Images;

public sealed class OverlayRootfsTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("crishim-rootfs-").FullName;
    private readonly ContentStore _content;
    private readonly LayerStore _layers;
    private readonly ImageStore _images;
    private readonly OverlayRootfsService _rootfs;

    public OverlayRootfsTests()
    {
        string imagesRoot = Path.Combine(_state, "images");
        _content = new ContentStore(imagesRoot);
        _layers = new LayerStore(imagesRoot, _content.IngestDirectory);
        _images = new ImageStore(imagesRoot, _content);
        _rootfs = new OverlayRootfsService(_state, _images, _layers, NullLogger<OverlayRootfsService>.Instance);
    }

    public void Dispose()
    {
        foreach (string container in Directory.Exists(_rootfs.Root) ? Directory.GetDirectories(_rootfs.Root) : [])
        {
            _rootfs.RemoveAsync(Path.GetFileName(container), CancellationToken.None).Wait();
        }
        Directory.Delete(_state, recursive: true);
    }

    private async Task<string> AddLayerAsync(params (string Name, string? Content)[] files)
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, leaveOpen: true))
        {
            foreach (var (name, content) in files)
            {
                writer.WriteEntry(content is null
                    ? new PaxTarEntry(TarEntryType.Directory, name) { Mode = (UnixFileMode)0b111_101_101 }
                    : new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)), Mode = (UnixFileMode)0b110_100_100 });
            }
        }
        string diffId = ContentDigest.Of(tar.ToArray());
        using var pending = _layers.BeginUnpack();
        var usage = await LayerUnpacker.UnpackAsync(new MemoryStream(tar.ToArray()), pending.DiffDirectory, tar.Length, CancellationToken.None);
        _layers.Commit(pending, diffId, usage);
        return diffId;
    }

    private StoredImage AddImage(IEnumerable<string> diffIds)
    {
        // A unique label gives each test image its own id.
        byte[] config = Encoding.UTF8.GetBytes("{\"config\":{\"Labels\":{\"n\":\"" + Guid.NewGuid() + "\"}}}");
        string id = ContentDigest.Of(config);
        _content.Put(id, config);
        return _images.Add(new ImageRecord { Id = id, DiffIds = [.. diffIds], Blobs = [id] });
    }

    [Fact]
    public async Task MountsTheLayersUnderAWritableLayerAndReportsChanges()
    {
        string lower = await AddLayerAsync(("etc/", null), ("etc/hostname", "base"), ("etc/motd", "hello"), ("data/", null));
        string upper = await AddLayerAsync(("etc/.wh.motd", ""), ("etc/hostname", "layer2"));
        var image = AddImage([lower, upper]);

        string merged = await _rootfs.MountAsync("c1", image, CancellationToken.None);
        Assert.Equal(merged, await _rootfs.MountAsync("c1", image, CancellationToken.None));
        Assert.True(MountTable.IsMountPoint(merged));
        Assert.Equal("layer2", File.ReadAllText(Path.Combine(merged, "etc/hostname")));
        Assert.False(File.Exists(Path.Combine(merged, "etc/motd")));

        File.WriteAllText(Path.Combine(merged, "data/new"), "12345");
        File.WriteAllText(Path.Combine(merged, "etc/hostname"), "changed");
        File.Delete(Path.Combine(merged, "etc/hostname"));
        var changes = _rootfs.Changes("c1").ToDictionary(c => c.Path, c => c.Kind);
        Assert.Equal(RootfsChangeKind.Added, changes["/data/new"]);
        Assert.Equal(RootfsChangeKind.Deleted, changes["/etc/hostname"]);
        Assert.Equal(RootfsChangeKind.Modified, changes["/data"]);
        Assert.Equal(5UL, _rootfs.WritableLayerBytes("c1"));
        Assert.Contains(lower, _rootfs.LayersInUse());

        await _rootfs.UnmountAsync("c1", CancellationToken.None);
        Assert.False(MountTable.IsMountPoint(merged));
        // The writable layer outlives the mount: a remount shows the same changes.
        await _rootfs.MountAsync("c1", image, CancellationToken.None);
        Assert.Equal("12345", File.ReadAllText(Path.Combine(merged, "data/new")));

        await _rootfs.RemoveAsync("c1", CancellationToken.None);
        Assert.False(Directory.Exists(Path.Combine(_rootfs.Root, "c1")));
        Assert.True(Directory.Exists(_layers.DiffDirectory(lower)), "removing a rootfs must not touch the image layers");
        await _rootfs.RemoveAsync("c1", CancellationToken.None);
    }

    [Fact]
    public async Task ALongLayerChainFitsTheMountOptionLimitThroughShortLinks()
    {
        var diffIds = new List<string>();
        for (int i = 0; i < 120; i++) diffIds.Add(await AddLayerAsync(($"layer{i}", $"{i}")));
        // With absolute layer paths the options would be ~120 * 100 bytes, past one page.
        Assert.True(diffIds.Sum(d => _layers.DiffDirectory(d).Length + 1) > 4096);
        string merged = await _rootfs.MountAsync("many", AddImage(diffIds), CancellationToken.None);
        Assert.Equal("0", File.ReadAllText(Path.Combine(merged, "layer0")));
        Assert.Equal("119", File.ReadAllText(Path.Combine(merged, "layer119")));
    }

    [Fact]
    public async Task ContainerIdsThatAreNotDirectoryNamesAreRefused()
    {
        await Assert.ThrowsAsync<InvalidRequestException>(() => _rootfs.MountAsync("../escape", AddImage([]), CancellationToken.None));
        Assert.Throws<InvalidRequestException>(() => _rootfs.UpperDir("abc\n"));
    }
}
