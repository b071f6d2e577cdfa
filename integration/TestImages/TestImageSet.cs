namespace CriShim.TestImages;

/// <summary>Names (repository:tag, without a registry host) of the images <see cref="TestImageSet"/> builds.</summary>
public static class TestImageNames
{
    /// <summary>The dynamic busybox base; <c>Cmd ["sh"]</c>. Also tagged <see cref="BusyboxOtherTag"/>.</summary>
    public const string Busybox = "crishim-test/busybox:latest";

    /// <summary>The same manifest as <see cref="Busybox"/> under a second tag.</summary>
    public const string BusyboxOtherTag = "crishim-test/busybox:1.35";

    /// <summary>OCI index: linux/amd64 and linux/arm64/v8, different manifests; /etc/platform names the platform.</summary>
    public const string BusyboxIndex = "crishim-test/busybox-index:latest";

    /// <summary>Base image pushed with Docker schema 2 media types.</summary>
    public const string BusyboxDocker = "crishim-test/busybox-docker:latest";

    /// <summary>Docker manifest list: linux/amd64 and linux/arm64/v8, like <see cref="BusyboxIndex"/>.</summary>
    public const string BusyboxDockerList = "crishim-test/busybox-docker-list:latest";

    /// <summary>busybox-static only, no libraries: the smallest runnable image.</summary>
    public const string BusyboxStatic = "crishim-test/busybox-static:latest";

    /// <summary><c>User "1000"</c>; /etc/passwd names uid 1000 "tester" (group 1000 "tester", home /home/tester).</summary>
    public const string User = "crishim-test/user:latest";

    /// <summary><c>User "www-data"</c> (uid 33, gid 33).</summary>
    public const string Username = "crishim-test/username:latest";

    /// <summary>Entrypoint ["/bin/sh","-c"], Cmd ["echo hello"], Volumes /data, WorkingDir /work, Env GREETING, StopSignal SIGUSR1.</summary>
    public const string EntrypointVolume = "crishim-test/entrypoint-volume:latest";

    /// <summary>The base layer and a second layer compressed with zstd (OCI tar+zstd).</summary>
    public const string Zstd = "crishim-test/zstd:latest";

    /// <summary>The base plus <see cref="TestImageSet.ManyLayersCount"/> layers, each adding /layers/NN.</summary>
    public const string ManyLayers = "crishim-test/many-layers:latest";

    /// <summary>A layer deletes a lower file and makes a directory opaque; see <see cref="WhiteoutPaths"/>.</summary>
    public const string Whiteouts = "crishim-test/whiteouts:latest";

    /// <summary>The base plus four 25 MiB layers of seeded random data (<see cref="TestImageSet.Big"/> only).</summary>
    public const string Big = "crishim-test/big:latest";
}

/// <summary>What a correct unpack of <see cref="TestImageNames.Whiteouts"/> shows.</summary>
public static class WhiteoutPaths
{
    /// <summary>Added by the lower layer, untouched: present.</summary>
    public const string Kept = "/data/kept";

    /// <summary>Added by the lower layer, whited out by the upper one: absent.</summary>
    public const string Removed = "/data/removed";

    /// <summary>Opaque in the upper layer: holds only <see cref="OpaqueNew"/>.</summary>
    public const string OpaqueDirectory = "/data/opaque";

    /// <summary>In the lower layer's opaque directory (with a subdirectory "sub"): absent.</summary>
    public const string OpaqueOld = "/data/opaque/old";

    public const string OpaqueNew = "/data/opaque/new";
}

/// <summary>One repository's content and the tags it is pushed under.</summary>
public sealed record TestImage(string Repository, IReadOnlyList<string> Tags, IManifestArtifact Artifact)
{
    /// <summary>repository:first-tag.</summary>
    public string Name => $"{Repository}:{Tags[0]}";

    public IEnumerable<string> Names => Tags.Select(tag => $"{Repository}:{tag}");

    /// <summary>The digest of the manifest (or index) the tags point at: the image's repo digest.</summary>
    public string ManifestDigest => Artifact.Manifest.Digest;

    /// <summary>The linux/amd64 image, the one a pull on this host selects.</summary>
    public Image Image => Artifact.Images.Single(image => image.Platform == Platform.LinuxAmd64);

    /// <summary>The image id (config digest) of the linux/amd64 image.</summary>
    public string ImageId => Image.Id;
}

/// <summary>Builds the test images. Every build of the same inputs gives the same digests.</summary>
public static class TestImageSet
{
    public const int ManyLayersCount = 50;
    public const int BigLayerCount = 4;
    public const int BigLayerBytes = 25 << 20;
    public const string DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Config label naming the repository, so that every test image has its own id.</summary>
    public const string ImageLabel = "io.crishim.test-image";

    /// <summary>The images the integration tests use; a second or so to build.</summary>
    public static IReadOnlyList<TestImage> Standard()
    {
        var bases = BaseLayers.Load();
        Layer busybox = bases.Busybox;
        return
        [
            Single(TestImageNames.Busybox, [busybox], new ContainerConfig { Cmd = ["sh"] }, extraTags: [Tag(TestImageNames.BusyboxOtherTag)]),
            MultiPlatform(TestImageNames.BusyboxIndex, busybox, ManifestFormat.Oci),
            Single(TestImageNames.BusyboxDocker, [busybox], new ContainerConfig { Cmd = ["sh"] }, ManifestFormat.Docker),
            MultiPlatform(TestImageNames.BusyboxDockerList, busybox, ManifestFormat.Docker),
            Single(TestImageNames.BusyboxStatic, [bases.BusyboxStatic], new ContainerConfig { Cmd = ["sh"] }),
            Single(TestImageNames.User, [busybox, TesterLayer()], new ContainerConfig { User = "1000", Cmd = ["sh"] }),
            Single(TestImageNames.Username, [busybox], new ContainerConfig { User = "www-data", Cmd = ["sh"] }),
            Single(TestImageNames.EntrypointVolume, [busybox, new LayerBuilder().Directory("/work").Directory("/data").Build()], new ContainerConfig
            {
                Entrypoint = ["/bin/sh", "-c"],
                Cmd = ["echo hello"],
                Volumes = new() { ["/data"] = new EmptyObject() },
                WorkingDir = "/work",
                Env = [DefaultPath, "GREETING=hello from the image"],
                StopSignal = "SIGUSR1",
            }),
            Single(TestImageNames.Zstd, [
                LayerBuilder.Compress(bases.BusyboxTar, LayerCompression.Zstd),
                new LayerBuilder().File("/zstd", "compressed with zstd\n").Build(LayerCompression.Zstd)],
                new ContainerConfig { Cmd = ["sh"] }),
            Single(TestImageNames.ManyLayers, [busybox, .. Enumerable.Range(1, ManyLayersCount).Select(i => new LayerBuilder().File($"/layers/{i:D2}", $"layer {i}\n").Build())],
                new ContainerConfig { Cmd = ["sh"] }),
            Single(TestImageNames.Whiteouts, [busybox, .. WhiteoutLayers()], new ContainerConfig { Cmd = ["sh"] }),
        ];
    }

    /// <summary>About 100 MiB in <see cref="BigLayerCount"/> layers, for the pull benchmark.</summary>
    public static IReadOnlyList<TestImage> Big()
    {
        var layers = Enumerable.Range(1, BigLayerCount)
            .Select(i => new LayerBuilder().File($"/big/{i}.bin", SeededBytes(i, BigLayerBytes)).Build());
        return [Single(TestImageNames.Big, [BaseLayers.Load().Busybox, .. layers], new ContainerConfig { Cmd = ["sh"] })];
    }

    private static TestImage Single(
        string name,
        IEnumerable<Layer> layers,
        ContainerConfig config,
        ManifestFormat format = ManifestFormat.Oci,
        IEnumerable<string>? extraTags = null)
    {
        (string repository, string tag) = Split(name);
        var image = Image.Create(layers, Labelled(config, repository), format: format);
        return new TestImage(repository, [tag, .. extraTags ?? []], image);
    }

    private static TestImage MultiPlatform(string name, Layer busybox, ManifestFormat format)
    {
        (string repository, string tag) = Split(name);
        var config = Labelled(new ContainerConfig { Cmd = ["sh"] }, repository);
        var images = new[] { Platform.LinuxAmd64, Platform.LinuxArm64 }.Select(platform =>
            Image.Create([busybox, new LayerBuilder().File("/etc/platform", platform + "\n").Build()], config, platform, format));
        return new TestImage(repository, [tag], ImageIndex.Create(images, format));
    }

    private static ContainerConfig Labelled(ContainerConfig config, string repository) => config with
    {
        Env = config.Env ?? [DefaultPath],
        Labels = new(config.Labels ?? new()) { [ImageLabel] = repository },
    };

    private static Layer TesterLayer()
    {
        string passwd = BaseLayers.Passwd + "tester:x:1000:1000:tester:/home/tester:/bin/sh\n";
        return new LayerBuilder()
            .File("/etc/passwd", passwd)
            .File("/etc/group", BaseLayers.Group + "tester:x:1000:\n")
            .File("/etc/shadow", BaseLayers.Shadow(passwd), FileModes.Mode0640)
            .Directory("/home/tester", uid: 1000, gid: 1000)
            .Build();
    }

    private static IEnumerable<Layer> WhiteoutLayers()
    {
        yield return new LayerBuilder()
            .File(WhiteoutPaths.Kept, "kept\n")
            .File(WhiteoutPaths.Removed, "removed\n")
            .File(WhiteoutPaths.OpaqueOld, "old\n")
            .File(WhiteoutPaths.OpaqueDirectory + "/sub/deep", "deep\n")
            .Build();
        yield return new LayerBuilder()
            .Whiteout(WhiteoutPaths.Removed)
            .OpaqueDirectory(WhiteoutPaths.OpaqueDirectory)
            .File(WhiteoutPaths.OpaqueNew, "new\n")
            .Build();
    }

    /// <summary>Incompressible bytes from SplitMix64, stable across .NET versions (unlike seeded System.Random).</summary>
    private static byte[] SeededBytes(int seed, int length)
    {
        var bytes = new byte[length];
        ulong state = (ulong)seed;
        for (int offset = 0; offset < length; offset += sizeof(ulong))
        {
            ulong z = state += 0x9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            BitConverter.TryWriteBytes(bytes.AsSpan(offset), z ^ (z >> 31));
        }
        return bytes;
    }

    private static (string Repository, string Tag) Split(string name)
    {
        int colon = name.LastIndexOf(':');
        return (name[..colon], name[(colon + 1)..]);
    }

    private static string Tag(string name) => Split(name).Tag;
}
