using System.Net;
using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Images;

public sealed class ImagePullerTests : IDisposable
{
    private const long ConfigLimit = 8 * 1024 * 1024;
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-puller-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task AConfigDeclaredOverEightMiBIsRefusedBeforeItsBlobIsRequested()
    {
        string configDigest = "sha256:" + new string('a', 64);
        string manifest = $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{configDigest}}","size":{{ConfigLimit + 1}}},"layers":[]}""";
        var blobBody = new EndlessStream();
        var handler = new ScriptedHandler(request => request.RequestUri!.AbsolutePath.Contains("/manifests/")
            ? ScriptedHandler.Json(HttpStatusCode.OK, manifest)
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(blobBody) });
        var registries = new RegistriesConfig();
        var content = new ContentStore(_root);
        using var puller = new ImagePuller(
            new RegistryClient(new HttpClient(handler), new RegistryEndpoints(registries), NullLogger<RegistryClient>.Instance),
            content, new LayerStore(_root, content.IngestDirectory), new ImageStore(_root, content), registries, NullLogger<ImagePuller>.Instance);

        var e = await Assert.ThrowsAsync<LimitExceededException>(() =>
            puller.PullAsync("127.0.0.1:5000/huge-config", RegistryCredentials.Anonymous, new Dictionary<string, string>(), CancellationToken.None));
        Assert.Contains(configDigest, e.Message);
        Assert.DoesNotContain(handler.Requests, r => r.Contains("/blobs/"));
        Assert.Equal(0, blobBody.BytesRead);
    }
}
