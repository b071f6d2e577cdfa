using System.IO.Compression;
using System.Net;
using System.Text;
using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Images;

public sealed class CheckpointImagesTests : IDisposable
{
    private const string Repository = "127.0.0.1:5000/checkpoints/counter";
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-ckptimg-").FullName;
    private readonly ContentStore _content;
    private readonly LayerStore _layers;
    private readonly ImageStore _images;

    public CheckpointImagesTests()
    {
        _content = new ContentStore(_root);
        _layers = new LayerStore(_root, _content.IngestDirectory);
        _images = new ImageStore(_root, _content);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Stands for a checkpoint archive: the pull must not care what the tar holds.</summary>
    private static readonly byte[] Archive = Encoding.UTF8.GetBytes(new string('c', 4096));

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(data);
        return output.ToArray();
    }

    /// <summary>A registry serving one image: its blobs by digest and its manifest (or index) under "latest".</summary>
    private static ScriptedHandler Registry(string topManifest, string topMediaType, Dictionary<string, byte[]> blobs, Dictionary<string, string>? manifests = null) =>
        new(request =>
        {
            string path = request.RequestUri!.AbsolutePath;
            string last = path[(path.LastIndexOf('/') + 1)..];
            if (path.Contains("/manifests/"))
            {
                string body = last == "latest" ? topManifest : manifests![last];
                var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) };
                response.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(
                    last == "latest" ? topMediaType : "application/vnd.oci.image.manifest.v1+json");
                return response;
            }
            return blobs.TryGetValue(last, out byte[]? blob)
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(blob) }
                : new HttpResponseMessage(HttpStatusCode.NotFound);
        });

    private sealed record BuiltImage(string Manifest, Dictionary<string, byte[]> Blobs);

    private static BuiltImage Build(byte[] layer, string layerMediaType, string diffId, string? manifestAnnotation, int layerCount = 1)
    {
        string layerDigest = ContentDigest.Of(layer);
        string diffIds = string.Join(',', Enumerable.Repeat($"\"{diffId}\"", layerCount));
        byte[] config = Encoding.UTF8.GetBytes($$$"""{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[{{{diffIds}}}]}}""");
        string configDigest = ContentDigest.Of(config);
        string layers = string.Join(',', Enumerable.Repeat($$"""{"mediaType":"{{layerMediaType}}","digest":"{{layerDigest}}","size":{{layer.Length}}}""", layerCount));
        string annotations = manifestAnnotation is null ? "" : $$""","annotations":{"{{manifestAnnotation}}":"counter"}""";
        string manifest = $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{configDigest}}","size":{{config.Length}}},"layers":[{{layers}}]{{annotations}}}""";
        return new BuiltImage(manifest, new Dictionary<string, byte[]> { [configDigest] = config, [layerDigest] = layer });
    }

    private ImagePuller Puller(ScriptedHandler handler)
    {
        var registries = new RegistriesConfig();
        return new ImagePuller(new RegistryClient(new HttpClient(handler), new RegistryEndpoints(registries), NullLogger<RegistryClient>.Instance),
            _content, _layers, _images, registries, NullLogger<ImagePuller>.Instance);
    }

    private Task<StoredImage> PullAsync(ImagePuller puller) =>
        puller.PullAsync(Repository + ":latest", RegistryCredentials.Anonymous, new Dictionary<string, string>(), CancellationToken.None);

    [Fact]
    public async Task AGzipCheckpointLayerIsKeptAsABlobNotUnpackedAndDecompressesToARootOnlyTempArchive()
    {
        var image = Build(Gzip(Archive), "application/vnd.oci.image.layer.v1.tar+gzip", ContentDigest.Of(Archive), CheckpointImages.CriONameAnnotation);
        using var puller = Puller(Registry(image.Manifest, "application/vnd.oci.image.manifest.v1+json", image.Blobs));

        var stored = await PullAsync(puller);

        Assert.Empty(_layers.DiffIds);
        Assert.Equal("counter", stored.Annotations[CheckpointImages.CriONameAnnotation]);
        Assert.Single(_images.List());
        Assert.Throws<InvalidOperationException>(() => _images.DiffIdsOf(stored.Id));
        Assert.Contains("is a checkpoint of container \"counter\", not a root filesystem",
            Assert.Throws<InvalidRequestException>(() => CheckpointImages.RequireRootfsImage(stored, "image x")).Message);
        var checkpoints = new CheckpointImages(_images, _content);
        var layer = checkpoints.Find(Repository + ":latest");
        Assert.NotNull(layer);
        Assert.Equal("counter", layer.ContainerName);
        string path;
        using (var archive = await checkpoints.OpenArchiveAsync(layer, CancellationToken.None))
        {
            path = archive.Path;
            Assert.Equal(Archive, File.ReadAllBytes(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task AnIndexAnnotatedTheCriuWayWithAPlainTarLayerIsReadInPlace()
    {
        var image = Build(Archive, "application/vnd.oci.image.layer.v1.tar", ContentDigest.Of(Archive), manifestAnnotation: null);
        string manifestDigest = ContentDigest.Of(Encoding.UTF8.GetBytes(image.Manifest));
        string index = $$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{{{manifestDigest}}}","size":{{{Encoding.UTF8.GetByteCount(image.Manifest)}}},"platform":{"architecture":"amd64","os":"linux"}}],"annotations":{"{{{CheckpointImages.CriuNameAnnotation}}}":"counter"}}""";
        using var puller = Puller(Registry(index, "application/vnd.oci.image.index.v1+json", image.Blobs, new() { [manifestDigest] = image.Manifest }));

        await PullAsync(puller);

        Assert.Empty(_layers.DiffIds);
        var checkpoints = new CheckpointImages(_images, _content);
        var layer = checkpoints.Find(Repository + ":latest")!;
        using var archive = await checkpoints.OpenArchiveAsync(layer, CancellationToken.None);
        Assert.Equal(_content.PathOf(ContentDigest.Of(Archive)), archive.Path);
    }

    [Fact]
    public async Task AnOrdinaryImageIsNoCheckpoint()
    {
        var image = Build(Gzip(EmptyTar()), "application/vnd.oci.image.layer.v1.tar+gzip", ContentDigest.Of(EmptyTar()), manifestAnnotation: null);
        using var puller = Puller(Registry(image.Manifest, "application/vnd.oci.image.manifest.v1+json", image.Blobs));

        var stored = await PullAsync(puller);

        Assert.Single(_layers.DiffIds);
        Assert.Null(new CheckpointImages(_images, _content).Find(stored.Id));
    }

    private static byte[] EmptyTar() => new byte[1024];

    [Fact]
    public async Task ACheckpointImageWithTwoLayersIsRefusedWhenPulled()
    {
        var image = Build(Archive, "application/vnd.oci.image.layer.v1.tar", ContentDigest.Of(Archive), CheckpointImages.CriONameAnnotation, layerCount: 2);
        using var puller = Puller(Registry(image.Manifest, "application/vnd.oci.image.manifest.v1+json", image.Blobs));

        var e = await Assert.ThrowsAsync<RegistryException>(() => PullAsync(puller));
        Assert.Contains("exactly one", e.Message);
        Assert.Empty(_images.List());
    }

    [Fact]
    public async Task AnArchiveWhoseDigestIsNotTheConfigsDiffIdIsRefusedAndItsTempFileRemoved()
    {
        string wrongDiffId = ContentDigest.Of(Encoding.UTF8.GetBytes("something else"));
        var image = Build(Gzip(Archive), "application/vnd.oci.image.layer.v1.tar+gzip", wrongDiffId, CheckpointImages.CriONameAnnotation);
        using var puller = Puller(Registry(image.Manifest, "application/vnd.oci.image.manifest.v1+json", image.Blobs));
        await PullAsync(puller);
        var checkpoints = new CheckpointImages(_images, _content);

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => checkpoints.OpenArchiveAsync(checkpoints.Find(Repository + ":latest")!, CancellationToken.None));
        Assert.Contains(wrongDiffId, e.Message);
        Assert.Empty(Directory.GetFiles(_content.IngestDirectory));
    }
}
