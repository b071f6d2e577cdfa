using System.Formats.Tar;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using CriShim.TestImages;
using CriImage = Runtime.V1.Image;
using OciImage = CriShim.TestImages.Image;

namespace CriShim.Integration;

/// <summary>The ImageService against the shared test registries (and a faulty one), through the real daemon.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ImageTests(RegistryFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    private static Task<PullImageResponse> PullAsync(Daemon daemon, string reference, AuthConfig? auth = null) =>
        daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = reference }, Auth = auth }).ResponseAsync;

    private static async Task<CriImage?> StatusAsync(Daemon daemon, string reference) =>
        (await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = reference } })).Image;

    private static Task RemoveAsync(Daemon daemon, string reference) =>
        daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = reference } }).ResponseAsync;

    private static string ImagesDirectory(Daemon daemon) => Path.Combine(daemon.Dirs.Root, "images");

    [Fact]
    public async Task PullByTagThenListStatusAndRemoveBehaveAsTheCriSays()
    {
        await using var daemon = await Daemon.StartAsync();
        var busybox = fixture.Image(TestImageNames.Busybox);
        string reference = fixture.Reference(TestImageNames.Busybox), other = fixture.Reference(TestImageNames.BusyboxOtherTag);

        var pulled = await PullAsync(daemon, reference);
        Assert.Equal(busybox.ImageId, pulled.ImageRef);
        Assert.Equal(busybox.ImageId, (await PullAsync(daemon, other)).ImageRef);

        var listed = Assert.Single((await daemon.Images.ListImagesAsync(new ListImagesRequest())).Images);
        Assert.Equal(busybox.ImageId, listed.Id);
        Assert.Equal(new[] { reference, other }.Order(), listed.RepoTags.Order());
        Assert.Equal([$"{fixture.Host}/{busybox.Repository}@{busybox.ManifestDigest}"], listed.RepoDigests);
        Assert.Equal((ulong)(busybox.Image.Config.Size + busybox.Image.Layers.Sum(l => l.Blob.Size)), listed.Size);

        string shortId = busybox.ImageId["sha256:".Length..][..12];
        foreach (string name in new[] { reference, busybox.ImageId, shortId, fixture.DigestReference(TestImageNames.Busybox) })
        {
            Assert.Equal(busybox.ImageId, (await StatusAsync(daemon, name))?.Id);
        }
        Assert.Null(await StatusAsync(daemon, fixture.Registry.Reference("crishim-test/busybox:absent")));
        var filtered = await daemon.Images.ListImagesAsync(new ListImagesRequest { Filter = new ImageFilter { Image = new ImageSpec { Image = other } } });
        Assert.Equal(busybox.ImageId, Assert.Single(filtered.Images).Id);

        var verbose = await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = reference }, Verbose = true });
        using var info = JsonDocument.Parse(verbose.Info["info"]);
        Assert.Equal(busybox.Image.Layers.Select(l => l.DiffId),
            info.RootElement.GetProperty("imageSpec").GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(d => d.GetString()));
        Assert.Equal(busybox.Image.Manifest.Digest, info.RootElement.GetProperty("manifestDigest").GetString());

        // A tag another tag shares goes alone; the last name takes the image, blobs and layers with it.
        await RemoveAsync(daemon, reference);
        Assert.Equal([other], (await StatusAsync(daemon, busybox.ImageId))!.RepoTags);
        await RemoveAsync(daemon, other);
        Assert.Null(await StatusAsync(daemon, busybox.ImageId));
        await RemoveAsync(daemon, other);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "layers")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "blobs", "sha256")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "l")));
    }

    [Theory]
    [InlineData(TestImageNames.BusyboxIndex)]
    [InlineData(TestImageNames.BusyboxDockerList)]
    public async Task PullFromAnIndexSelectsLinuxAmd64(string name)
    {
        await using var daemon = await Daemon.StartAsync();
        var image = fixture.Image(name);
        var pulled = await PullAsync(daemon, fixture.Reference(name));
        Assert.Equal(image.ImageId, pulled.ImageRef);
        var status = await StatusAsync(daemon, fixture.Reference(name));
        // The repo digest names the index, as kubelet's imageID does.
        Assert.Equal([$"{fixture.Host}/{image.Repository}@{image.ManifestDigest}"], status!.RepoDigests);
        var platformLayer = image.Image.Layers[^1];
        string platformFile = Path.Combine(ImagesDirectory(daemon), "layers", platformLayer.DiffId["sha256:".Length..], "diff", "etc", "platform");
        Assert.Equal("linux/amd64\n", File.ReadAllText(platformFile));
    }

    [Fact]
    public async Task PullByDigestRecordsTheDigestAndNoTag()
    {
        await using var daemon = await Daemon.StartAsync();
        string reference = fixture.DigestReference(TestImageNames.BusyboxDocker);
        var pulled = await PullAsync(daemon, reference);
        Assert.Equal(fixture.Image(TestImageNames.BusyboxDocker).ImageId, pulled.ImageRef);
        var status = await StatusAsync(daemon, reference);
        Assert.Empty(status!.RepoTags);
        Assert.Equal([reference], status.RepoDigests);
    }

    [Fact]
    public async Task UsersZstdAndManyLayerImagesPull()
    {
        await using var daemon = await Daemon.StartAsync();
        foreach (string name in new[] { TestImageNames.User, TestImageNames.Username, TestImageNames.Zstd, TestImageNames.ManyLayers, TestImageNames.EntrypointVolume })
        {
            Assert.Equal(fixture.Image(name).ImageId, (await PullAsync(daemon, fixture.Reference(name))).ImageRef);
        }
        var user = await StatusAsync(daemon, fixture.Reference(TestImageNames.User));
        Assert.Equal(1000, user!.Uid.Value);
        Assert.Equal("", user.Username);
        var username = await StatusAsync(daemon, fixture.Reference(TestImageNames.Username));
        Assert.Null(username!.Uid);
        Assert.Equal("www-data", username.Username);
        var zstd = fixture.Image(TestImageNames.Zstd).Image;
        Assert.Contains(zstd.Layers, l => l.Compression == LayerCompression.Zstd);
        Assert.All(zstd.Layers, l => Assert.True(Directory.Exists(Path.Combine(ImagesDirectory(daemon), "layers", l.DiffId["sha256:".Length..], "diff"))));
        var list = await daemon.Images.ListImagesAsync(new ListImagesRequest());
        Assert.Equal(5, list.Images.Count);
    }

    [Fact]
    public async Task WhiteoutsAreUnpackedAsOverlayWhiteouts()
    {
        await using var daemon = await Daemon.StartAsync();
        var image = fixture.Image(TestImageNames.Whiteouts);
        await PullAsync(daemon, fixture.Reference(TestImageNames.Whiteouts));
        string upper = Path.Combine(ImagesDirectory(daemon), "layers", image.Image.Layers[^1].DiffId["sha256:".Length..], "diff");
        Assert.Equal("character special file 0,0", HostCommand.Output("stat", "-c", "%F %Hr,%Lr", upper + WhiteoutPaths.Removed).Trim());
        Assert.Equal("y", HostCommand.Output("python3", "-c", "import os,sys; print(os.getxattr(sys.argv[1], 'trusted.overlay.opaque').decode())", upper + WhiteoutPaths.OpaqueDirectory).Trim());
        Assert.Equal("new\n", File.ReadAllText(upper + WhiteoutPaths.OpaqueNew));
    }

    [Fact]
    public async Task BasicAuthPullsWithCredentialsAndRefusesWrongOnes()
    {
        await using var daemon = await Daemon.StartAsync();
        string reference = fixture.AuthReference(TestImageNames.Busybox);

        var none = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, reference));
        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
        Assert.Contains("requires a username and password", none.Status.Detail);

        var wrong = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, reference, new AuthConfig { Username = RegistryFixture.Username, Password = "wrong" }));
        Assert.Equal(StatusCode.Unauthenticated, wrong.StatusCode);
        Assert.Contains($"rejected the credentials (user {RegistryFixture.Username})", wrong.Status.Detail);
        Assert.DoesNotContain("wrong", wrong.Status.Detail);

        var pulled = await PullAsync(daemon, reference, new AuthConfig { Username = RegistryFixture.Username, Password = RegistryFixture.Password });
        Assert.Equal(fixture.Image(TestImageNames.Busybox).ImageId, pulled.ImageRef);
        string auth = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{RegistryFixture.Username}:{RegistryFixture.Password}"));
        var index = await PullAsync(daemon, fixture.AuthReference(TestImageNames.BusyboxIndex), new AuthConfig { Auth = auth });
        Assert.Equal(fixture.Image(TestImageNames.BusyboxIndex).ImageId, index.ImageRef);
    }

    [Fact]
    public async Task AMissingImageIsNotFoundNamingTheReference()
    {
        await using var daemon = await Daemon.StartAsync();
        string reference = fixture.Registry.Reference("crishim-test/no-such-image:1.0");
        var e = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, reference));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains(reference, e.Status.Detail);

        var invalid = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, "UPPERCASE"));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
    }

    [Fact]
    public async Task ARegistryThatIsDownOrHangsFailsThePullWithinTheTimeout()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[registries]\npull_timeout_seconds = 3\n");
        using var nothing = new TcpListener(System.Net.IPAddress.Loopback, 0);
        nothing.Start();
        int closedPort = ((System.Net.IPEndPoint)nothing.LocalEndpoint).Port;
        nothing.Stop();
        var down = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, $"127.0.0.1:{closedPort}/app:1"));
        Assert.Contains($"cannot reach registry 127.0.0.1:{closedPort}", down.Status.Detail);

        using var hung = FaultyRegistry.Start();
        hung.Hang = true;
        var e = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, hung.Reference("app:1")));
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Contains("did not finish within 3 s", e.Status.Detail);
    }

    [Fact]
    public async Task ABlobWithTheWrongDigestIsRefusedAndTheNextGoodPullWorks()
    {
        await using var daemon = await Daemon.StartAsync();
        using var registry = FaultyRegistry.Start();
        var image = fixture.Image(TestImageNames.Busybox);
        registry.Add(image);
        string layer = image.Image.Layers[0].Blob.Digest;
        registry.Corrupt(layer);

        var e = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, registry.Reference(TestImageNames.Busybox)));
        Assert.Contains($"blob {layer} failed verification", e.Status.Detail);
        Assert.DoesNotContain(layer["sha256:".Length..], Directory.GetFiles(Path.Combine(ImagesDirectory(daemon), "blobs", "sha256")).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "ingest")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "layers")));

        registry.Corrupt(layer, corrupt: false);
        Assert.Equal(image.ImageId, (await PullAsync(daemon, registry.Reference(TestImageNames.Busybox))).ImageRef);
        AssertEveryBlobMatchesItsDigest(daemon);
    }

    [Fact]
    public async Task ALayerThatEscapesItsRootIsRefusedAndNothingIsWrittenOutside()
    {
        await using var daemon = await Daemon.StartAsync();
        using var registry = FaultyRegistry.Start();
        string marker = "crishim-escape-" + Guid.NewGuid().ToString("N");
        string target = Directory.CreateTempSubdirectory("crishim-target-").FullName;
        var climbing = EvilImage(new PaxTarEntry(TarEntryType.RegularFile, "../../../../../../../../../tmp/" + marker) { DataStream = new MemoryStream([1]) });
        var throughSymlink = EvilImage(
            new PaxTarEntry(TarEntryType.SymbolicLink, "etc") { LinkName = target },
            new PaxTarEntry(TarEntryType.RegularFile, "etc/" + marker) { DataStream = new MemoryStream([1]) });
        registry.Add("evil/climb", climbing, "1");
        registry.Add("evil/symlink", throughSymlink, "1");
        var good = fixture.Image(TestImageNames.BusyboxStatic);
        registry.Add(good);

        var climb = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, registry.Reference("evil/climb:1")));
        Assert.Contains("climbs out of the layer", climb.Status.Detail);
        var symlink = await Assert.ThrowsAsync<RpcException>(() => PullAsync(daemon, registry.Reference("evil/symlink:1")));
        Assert.Contains("goes through the symlink \"etc\"", symlink.Status.Detail);

        Assert.False(File.Exists("/tmp/" + marker));
        Assert.Empty(Directory.GetFileSystemEntries(target));
        Assert.Empty(Directory.GetFiles(daemon.Dirs.Base, "*" + marker + "*", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ImagesDirectory(daemon), "layers")));
        Assert.Empty((await daemon.Images.ListImagesAsync(new ListImagesRequest())).Images);

        Assert.Equal(good.ImageId, (await PullAsync(daemon, registry.Reference(TestImageNames.BusyboxStatic))).ImageRef);
        Directory.Delete(target);
    }

    [Fact]
    public async Task APullKilledHalfWayLeavesOnlyVerifiedBlobsAndSucceedsAfterARestart()
    {
        var dirs = DaemonDirs.Create();
        using var registry = FaultyRegistry.Start();
        var image = fixture.Image(TestImageNames.Busybox);
        registry.Add(image);
        registry.StallBlob = image.Image.Layers.MaxBy(l => l.Blob.Size)!.Blob.Digest;
        string ingest = Path.Combine(dirs.Root, "images", "ingest");

        await using (var first = await Daemon.StartAsync(dirs))
        {
            var pull = PullAsync(first, registry.Reference(TestImageNames.Busybox));
            await registry.Stalled.Task.WaitAsync(Patience);
            // The daemon opens its temp file as the first bytes arrive.
            while (Directory.GetFiles(ingest, "*.partial").Length == 0) await Task.Delay(20);
            await first.KillAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => pull);
        }
        Assert.NotEmpty(Directory.GetFileSystemEntries(ingest)); // a crash cleans nothing up itself

        registry.StallBlob = null;
        registry.Release();
        await using (var second = await Daemon.StartAsync(dirs))
        {
            Assert.Empty(Directory.GetFileSystemEntries(ingest));
            AssertEveryBlobMatchesItsDigest(second);
            Assert.Equal(image.ImageId, (await PullAsync(second, registry.Reference(TestImageNames.Busybox))).ImageRef);
            AssertEveryBlobMatchesItsDigest(second);
        }
        dirs.Delete();
    }

    [Fact]
    public async Task TwoConcurrentPullsDownloadEachLayerOnce()
    {
        await using var daemon = await Daemon.StartAsync();
        using var registry = FaultyRegistry.Start();
        var image = fixture.Image(TestImageNames.ManyLayers);
        registry.Add(image);
        registry.HoldBlobs = true;
        string reference = registry.Reference(TestImageNames.ManyLayers);

        var pulls = new[] { PullAsync(daemon, reference), PullAsync(daemon, reference) };
        // Both pulls are under way (each asked for the manifest) before any blob is served.
        while (registry.ManifestGets < 2) await Task.Delay(20);
        registry.Release();
        foreach (var pull in pulls) Assert.Equal(image.ImageId, (await pull).ImageRef);

        Assert.Equal(1, registry.Gets(image.Image.Config.Digest));
        Assert.All(image.Image.Layers.Select(l => l.Blob.Digest).Distinct(), digest => Assert.Equal(1, registry.Gets(digest)));
        Assert.Equal(2, registry.ManifestGets);
    }

    [Fact]
    public async Task ImageFsInfoCountsWhatIsStored()
    {
        await using var daemon = await Daemon.StartAsync();
        var empty = await daemon.Images.ImageFsInfoAsync(new ImageFsInfoRequest());
        var imageFs = Assert.Single(empty.ImageFilesystems);
        Assert.Equal(ImagesDirectory(daemon), imageFs.FsId.Mountpoint);
        Assert.Equal(0UL, imageFs.UsedBytes.Value);
        Assert.True(imageFs.Timestamp > 0);
        var containerFs = Assert.Single(empty.ContainerFilesystems);
        Assert.Equal(Path.Combine(daemon.Dirs.Root, "rootfs"), containerFs.FsId.Mountpoint);
        Assert.Equal(0UL, containerFs.UsedBytes.Value);

        var image = fixture.Image(TestImageNames.ManyLayers);
        await PullAsync(daemon, fixture.Reference(TestImageNames.ManyLayers));
        var full = Assert.Single((await daemon.Images.ImageFsInfoAsync(new ImageFsInfoRequest())).ImageFilesystems);
        ulong compressed = (ulong)(image.Image.Config.Size + image.Image.Layers.Sum(l => l.Blob.Size));
        Assert.True(full.UsedBytes.Value > compressed, $"{full.UsedBytes.Value} bytes used for {compressed} compressed bytes");
        Assert.True(full.InodesUsed.Value > (ulong)image.Image.Layers.Count);

        await RemoveAsync(daemon, fixture.Reference(TestImageNames.ManyLayers));
        var after = Assert.Single((await daemon.Images.ImageFsInfoAsync(new ImageFsInfoRequest())).ImageFilesystems);
        Assert.Equal(0UL, after.UsedBytes.Value);
        Assert.Equal(0UL, after.InodesUsed.Value);
    }

    private static OciImage EvilImage(params TarEntry[] entries)
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, leaveOpen: true))
        {
            foreach (var entry in entries) writer.WriteEntry(entry);
        }
        return OciImage.Create([LayerBuilder.Compress(tar.ToArray(), LayerCompression.Gzip)], new CriShim.TestImages.ContainerConfig { Cmd = ["sh"] });
    }

    private static void AssertEveryBlobMatchesItsDigest(Daemon daemon)
    {
        foreach (string blob in Directory.GetFiles(Path.Combine(ImagesDirectory(daemon), "blobs", "sha256")))
        {
            using var stream = File.OpenRead(blob);
            Assert.Equal(Path.GetFileName(blob), Convert.ToHexStringLower(SHA256.HashData(stream)));
        }
    }
}
