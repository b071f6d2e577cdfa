using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using CriShim.Runtime.Metrics;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Images;

public sealed class ImagePullerTests : IDisposable
{
    private const long ConfigLimit = 8 * 1024 * 1024;
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-puller-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly string ConfigDigest = "sha256:" + new string('a', 64);

    /// <summary>A registry whose manifest declares a config over the limit, and whose every blob is endless.</summary>
    private static ScriptedHandler HugeConfigRegistry(EndlessStream blobBody)
    {
        string manifest = $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{ConfigDigest}}","size":{{ConfigLimit + 1}}},"layers":[]}""";
        return new ScriptedHandler(request => request.RequestUri!.AbsolutePath.Contains("/manifests/")
            ? ScriptedHandler.Json(HttpStatusCode.OK, manifest)
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(blobBody) });
    }

    private ImagePuller Puller(ScriptedHandler handler)
    {
        var registries = new RegistriesConfig();
        var content = new ContentStore(_root);
        return new ImagePuller(
            new RegistryClient(new HttpClient(handler), new RegistryEndpoints(registries), NullLogger<RegistryClient>.Instance),
            content, new LayerStore(_root, content.IngestDirectory), new ImageStore(_root, content), registries, NullLogger<ImagePuller>.Instance);
    }

    private static Task<StoredImage> PullHugeConfigAsync(ImagePuller puller) =>
        puller.PullAsync("127.0.0.1:5000/huge-config", RegistryCredentials.Anonymous, new Dictionary<string, string>(), CancellationToken.None);

    [Fact]
    public async Task AConfigDeclaredOverEightMiBIsRefusedBeforeItsBlobIsRequested()
    {
        var blobBody = new EndlessStream();
        var handler = HugeConfigRegistry(blobBody);
        using var puller = Puller(handler);

        var e = await Assert.ThrowsAsync<LimitExceededException>(() => PullHugeConfigAsync(puller));
        Assert.Contains(ConfigDigest, e.Message);
        Assert.DoesNotContain(handler.Requests, r => r.Contains("/blobs/"));
        Assert.Equal(0, blobBody.BytesRead);
    }

    [Fact]
    public async Task EveryPullIsTimedByOutcomeWhoeverAsksForIt()
    {
        // Restores pull through PullAsync too, so the time is taken there, not at the PullImage endpoint.
        var outcomes = new ConcurrentQueue<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == DaemonMetrics.MeterName && instrument.Name == "crishim_image_pull_duration_seconds") l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
        {
            foreach (var tag in tags) if (tag.Key == "outcome") outcomes.Enqueue((string)tag.Value!);
        });
        listener.Start();
        using var puller = Puller(HugeConfigRegistry(new EndlessStream()));

        await Assert.ThrowsAsync<LimitExceededException>(() => PullHugeConfigAsync(puller));

        Assert.Contains("failure", outcomes);
    }
}
