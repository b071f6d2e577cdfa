using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration;

/// <summary>The shared test registry serves the test images, and what it serves is right.</summary>
[Collection(RegistryCollection.Name)]
public sealed class TestImagesTests(RegistryFixture fixture, ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private IEnumerable<TestImage> DistinctImages => fixture.Images.Values.Distinct();

    [Fact]
    public async Task EveryManifestConfigAndLayerMatchesItsDigest()
    {
        output.WriteLine($"registry set up (build + push) in {fixture.SetupTime.TotalSeconds:F1}s");
        foreach (var image in DistinctImages)
        {
            foreach (string tag in image.Tags)
            {
                var (body, mediaType, digest) = await GetManifestAsync(fixture.Registry, image.Repository, tag);
                Assert.Equal(image.Artifact.MediaType, mediaType);
                Assert.Equal(image.ManifestDigest, digest);
                Assert.Equal(image.ManifestDigest, Blob.Sha256Digest(body));
            }
            foreach (var platformImage in image.Artifact.Images)
            {
                var (manifest, _, _) = await GetManifestAsync(fixture.Registry, image.Repository, platformImage.Manifest.Digest);
                Assert.Equal(platformImage.Manifest.Digest, Blob.Sha256Digest(manifest));
                using var config = JsonDocument.Parse(await GetBlobAsync(image.Repository, platformImage.Config.Digest));
                var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(id => id.GetString()).ToList();
                Assert.Equal(platformImage.Layers.Count, diffIds.Count);
                for (int i = 0; i < diffIds.Count; i++)
                {
                    var layer = platformImage.Layers[i];
                    byte[] blob = await GetBlobAsync(image.Repository, layer.Blob.Digest);
                    Assert.Equal(layer.Blob.Digest, Blob.Sha256Digest(blob));
                    Assert.Equal(diffIds[i], Blob.Sha256Digest(Decompress(blob, layer.Compression)));
                }
            }
        }
    }

    [Fact]
    public async Task SkopeoInspectsTheBaseImage()
    {
        var busybox = fixture.Image(TestImageNames.Busybox);
        var result = await HostCommand.RunAsync("skopeo", ["inspect", "--tls-verify=false", "docker://" + fixture.Reference(TestImageNames.Busybox)]);
        using var inspected = JsonDocument.Parse(result.EnsureSuccess().Output);
        var root = inspected.RootElement;
        Assert.Equal(busybox.ManifestDigest, root.GetProperty("Digest").GetString());
        Assert.Equal("amd64", root.GetProperty("Architecture").GetString());
        Assert.Equal("linux", root.GetProperty("Os").GetString());
        Assert.Equal([busybox.Image.Layers[0].Blob.Digest], root.GetProperty("Layers").EnumerateArray().Select(layer => layer.GetString()));
        Assert.Equal(["1.35", "latest"], root.GetProperty("RepoTags").EnumerateArray().Select(tag => tag.GetString()).Order());
        Assert.Equal("crishim-test/busybox", root.GetProperty("Labels").GetProperty(TestImageSet.ImageLabel).GetString());
    }

    [Fact]
    public async Task TheDockerImageUsesDockerMediaTypes()
    {
        var result = await HostCommand.RunAsync("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://" + fixture.Reference(TestImageNames.BusyboxDocker)]);
        using var manifest = JsonDocument.Parse(result.EnsureSuccess().Output);
        var root = manifest.RootElement;
        Assert.Equal(MediaTypes.DockerManifest, root.GetProperty("mediaType").GetString());
        Assert.Equal(MediaTypes.DockerConfig, root.GetProperty("config").GetProperty("mediaType").GetString());
        Assert.All(root.GetProperty("layers").EnumerateArray(), layer => Assert.Equal(MediaTypes.DockerLayerGzip, layer.GetProperty("mediaType").GetString()));
    }

    [Fact]
    public async Task TheAuthRegistryRejectsMissingAndWrongCredentials()
    {
        var registry = fixture.AuthRegistry;
        var v2 = new Uri(registry.BaseUri, "v2/");

        using var anonymous = await Http.GetAsync(v2);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("Basic", Assert.Single(anonymous.Headers.WwwAuthenticate).Scheme);
        Assert.Equal(HttpStatusCode.Unauthorized, await GetStatusAsync(v2, new NetworkCredential(RegistryFixture.Username, "wrong")));
        Assert.Equal(HttpStatusCode.OK, await GetStatusAsync(v2, fixture.Credentials));

        string reference = "docker://" + fixture.AuthReference(TestImageNames.Busybox);
        var wrong = await HostCommand.RunAsync("skopeo", ["inspect", "--tls-verify=false", "--creds", $"{RegistryFixture.Username}:wrong", reference]);
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("unauthorized", wrong.Error, StringComparison.OrdinalIgnoreCase);
        var right = await HostCommand.RunAsync("skopeo", ["inspect", "--tls-verify=false", "--creds", $"{RegistryFixture.Username}:{RegistryFixture.Password}", reference]);
        using var inspected = JsonDocument.Parse(right.EnsureSuccess().Output);
        Assert.Equal(fixture.Image(TestImageNames.Busybox).ManifestDigest, inspected.RootElement.GetProperty("Digest").GetString());

        using var wrongPusher = registry.CreateClient(new NetworkCredential(RegistryFixture.Username, "wrong"));
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => wrongPusher.PushAsync(fixture.Image(TestImageNames.Username)));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    [Theory]
    [InlineData(TestImageNames.BusyboxIndex, MediaTypes.OciIndex, MediaTypes.OciManifest)]
    [InlineData(TestImageNames.BusyboxDockerList, MediaTypes.DockerManifestList, MediaTypes.DockerManifest)]
    public async Task AnIndexListsBothPlatforms(string name, string indexType, string manifestType)
    {
        var image = fixture.Image(name);
        var (body, mediaType, _) = await GetManifestAsync(fixture.Registry, image.Repository, "latest");
        Assert.Equal(indexType, mediaType);
        using var index = JsonDocument.Parse(body);
        var entries = index.RootElement.GetProperty("manifests").EnumerateArray().ToList();
        Assert.Equal(2, entries.Count);
        var platforms = entries.Select(entry => entry.GetProperty("platform")).Select(p =>
            $"{p.GetProperty("os").GetString()}/{p.GetProperty("architecture").GetString()}{(p.TryGetProperty("variant", out var v) ? "/" + v.GetString() : "")}");
        Assert.Equal(["linux/amd64", "linux/arm64/v8"], platforms.Order());
        Assert.Equal(2, entries.Select(entry => entry.GetProperty("digest").GetString()).Distinct().Count());

        foreach (var entry in entries)
        {
            var (manifest, childType, _) = await GetManifestAsync(fixture.Registry, image.Repository, entry.GetProperty("digest").GetString()!);
            Assert.Equal(manifestType, childType);
            using var child = JsonDocument.Parse(manifest);
            string configDigest = child.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
            using var config = JsonDocument.Parse(await GetBlobAsync(image.Repository, configDigest));
            Assert.Equal(entry.GetProperty("platform").GetProperty("architecture").GetString(), config.RootElement.GetProperty("architecture").GetString());
        }

        // skopeo resolves the index for the host (amd64) like a runtime's pull does.
        var inspect = await HostCommand.RunAsync("skopeo", ["inspect", "--tls-verify=false", "docker://" + fixture.Reference(name)]);
        using var inspected = JsonDocument.Parse(inspect.EnsureSuccess().Output);
        Assert.Equal("amd64", inspected.RootElement.GetProperty("Architecture").GetString());
        Assert.Equal(image.Image.Layers.Select(layer => layer.Blob.Digest), inspected.RootElement.GetProperty("Layers").EnumerateArray().Select(layer => layer.GetString()));
    }

    [Theory]
    [InlineData(TestImageNames.Busybox)]
    [InlineData(TestImageNames.BusyboxStatic)]
    [InlineData(TestImageNames.BusyboxDocker)]
    [InlineData(TestImageNames.Zstd)]
    public async Task AnUnpackedImageRunsItsShellInAChroot(string name)
    {
        using var rootfs = await UnpackAsync(name);
        var result = await HostCommand.RunAsync("chroot", [rootfs.RootFs, "/bin/sh", "-c", "echo ok; ls /bin/ls; id -un"]);
        Assert.Equal("ok\n/bin/ls\nroot\n", result.EnsureSuccess().Output);
        // One hard link per applet: masking /bin/ls must not mask /bin/busybox.
        var busybox = await HostCommand.RunAsync("stat", ["-c", "%h", Path.Combine(rootfs.RootFs, "bin", "busybox")]);
        Assert.True(int.Parse(busybox.EnsureSuccess().Output) > 200, $"/bin/busybox has {busybox.Output.Trim()} links");
    }

    [Fact]
    public async Task TheDynamicBusyboxExecsAppletsFromBin()
    {
        using var rootfs = await UnpackAsync(TestImageNames.Busybox);
        // Without FEATURE_SH_STANDALONE, sh runs /bin/ls itself: removing it must break "ls".
        File.Delete(Path.Combine(rootfs.RootFs, "bin", "ls"));
        var result = await HostCommand.RunAsync("chroot", [rootfs.RootFs, "/bin/sh", "-c", "ls /"]);
        Assert.Equal(127, result.ExitCode);
        Assert.Contains("ls: not found", result.Error);
        (await HostCommand.RunAsync("chroot", [rootfs.RootFs, "/bin/ipcs", "-V"])).EnsureSuccess();
    }

    [Fact]
    public async Task TheUserImageResolvesItsUser()
    {
        var image = fixture.Image(TestImageNames.User);
        Assert.Equal("1000", image.Image.ContainerConfig.User);
        using var rootfs = await UnpackAsync(TestImageNames.User);
        var id = await HostCommand.RunAsync("chroot", [rootfs.RootFs, "/bin/id", "tester"]);
        Assert.Equal("uid=1000(tester) gid=1000(tester) groups=1000(tester)\n", id.EnsureSuccess().Output);
        var owner = await HostCommand.RunAsync("stat", ["-c", "%u:%g", Path.Combine(rootfs.RootFs, "home", "tester")]);
        Assert.Equal("1000:1000\n", owner.EnsureSuccess().Output);
    }

    [Fact]
    public async Task WhiteoutsHideLowerFilesWhenUnpacked()
    {
        using var rootfs = await UnpackAsync(TestImageNames.Whiteouts);
        string InRoot(string path) => rootfs.RootFs + path;
        Assert.True(File.Exists(InRoot(WhiteoutPaths.Kept)));
        Assert.False(File.Exists(InRoot(WhiteoutPaths.Removed)));
        Assert.Equal(["new"], Directory.EnumerateFileSystemEntries(InRoot(WhiteoutPaths.OpaqueDirectory)).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ConfigsCarryTheirRuntimeSettings()
    {
        using var entrypoint = await GetConfigAsync(TestImageNames.EntrypointVolume);
        var config = entrypoint.RootElement.GetProperty("config");
        Assert.Equal(["/bin/sh", "-c"], config.GetProperty("Entrypoint").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["echo hello"], config.GetProperty("Cmd").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("{}", config.GetProperty("Volumes").GetProperty("/data").GetRawText());
        Assert.Equal("/work", config.GetProperty("WorkingDir").GetString());
        Assert.Equal("SIGUSR1", config.GetProperty("StopSignal").GetString());
        Assert.Contains("GREETING=hello from the image", config.GetProperty("Env").EnumerateArray().Select(e => e.GetString()));

        using var username = await GetConfigAsync(TestImageNames.Username);
        Assert.Equal("www-data", username.RootElement.GetProperty("config").GetProperty("User").GetString());

        using var manyLayers = await GetConfigAsync(TestImageNames.ManyLayers);
        Assert.True(manyLayers.RootElement.GetProperty("rootfs").GetProperty("diff_ids").GetArrayLength() > 40);

        var (zstd, _, _) = await GetManifestAsync(fixture.Registry, "crishim-test/zstd", "latest");
        using var zstdManifest = JsonDocument.Parse(zstd);
        Assert.All(zstdManifest.RootElement.GetProperty("layers").EnumerateArray(),
            layer => Assert.Equal(MediaTypes.OciLayerZstd, layer.GetProperty("mediaType").GetString()));
    }

    [Fact]
    public void BuildsAreDeterministic()
    {
        Assert.Equal(BaseLayers.Load().Busybox.Blob.Digest, BaseLayers.Build().Busybox.Blob.Digest);
        Assert.Equal(DistinctImages.Select(image => image.ManifestDigest).Order(), TestImageSet.Standard().Select(image => image.ManifestDigest).Order());
    }

    private async Task<JsonDocument> GetConfigAsync(string name)
    {
        var image = fixture.Image(name);
        return JsonDocument.Parse(await GetBlobAsync(image.Repository, image.ImageId));
    }

    /// <summary>skopeo copies the image out of the registry (gzip-recompressing zstd, which umoci cannot read), umoci unpacks it.</summary>
    private async Task<UnpackedImage> UnpackAsync(string name)
    {
        var unpacked = new UnpackedImage();
        try
        {
            string layout = Path.Combine(unpacked.Directory, "layout") + ":image";
            (await HostCommand.RunAsync("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--dest-compress", "--dest-compress-format", "gzip", "docker://" + fixture.Reference(name), "oci:" + layout])).EnsureSuccess();
            (await HostCommand.RunAsync("umoci", ["unpack", "--image", layout, Path.Combine(unpacked.Directory, "bundle")])).EnsureSuccess();
            return unpacked;
        }
        catch
        {
            unpacked.Dispose();
            throw;
        }
    }

    private static async Task<(byte[] Body, string? MediaType, string? Digest)> GetManifestAsync(TestRegistry registry, string repository, string reference)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(registry.BaseUri, $"v2/{repository}/manifests/{reference}"));
        foreach (string type in MediaTypes.AllManifests) request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        using var response = await Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        string? digest = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.Single() : null;
        return (await response.Content.ReadAsByteArrayAsync(), response.Content.Headers.ContentType?.MediaType, digest);
    }

    private Task<byte[]> GetBlobAsync(string repository, string digest) =>
        Http.GetByteArrayAsync(new Uri(fixture.Registry.BaseUri, $"v2/{repository}/blobs/{digest}"));

    private static async Task<HttpStatusCode> GetStatusAsync(Uri uri, NetworkCredential credentials)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.UserName}:{credentials.Password}")));
        using var response = await Http.SendAsync(request);
        return response.StatusCode;
    }

    private static byte[] Decompress(byte[] blob, LayerCompression compression)
    {
        using Stream stream = compression switch
        {
            LayerCompression.Gzip => new GZipStream(new MemoryStream(blob), CompressionMode.Decompress),
            LayerCompression.Zstd => new ZstdSharp.DecompressionStream(new MemoryStream(blob)),
            _ => new MemoryStream(blob),
        };
        using var tar = new MemoryStream();
        stream.CopyTo(tar);
        return tar.ToArray();
    }

    /// <summary>An OCI layout and the runtime bundle umoci made of it, in a temp dir removed on dispose.</summary>
    private sealed class UnpackedImage : IDisposable
    {
        public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("crishim-unpack-").FullName;

        public string RootFs => Path.Combine(Directory, "bundle", "rootfs");

        public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
    }
}
