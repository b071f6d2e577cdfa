using System.Formats.Tar;
using System.Text;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Images;
using CriShim.Runtime.Restore;
using CriShim.Runtime.Server;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Restore;

public class CheckpointedContainerMatchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-match-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private const string ImageId = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private const string ManifestDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    private const string OtherDigest = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    /// <summary>config.dump as CriShim writes it: the image id, the reference it was pulled by, the name the request gave.</summary>
    private static readonly CheckpointConfigDump Dump = new("c0", "app", ImageId, $"localhost:5000/tools/busybox@{ManifestDigest}",
        "localhost:5000/tools/busybox:1.36", "runc", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, false);

    private sealed class Images(params StoredImage[] stored) : IImageLookup
    {
        public StoredImage? Find(string reference) =>
            stored.FirstOrDefault(i => i.Id == reference || i.RepoTags.Contains(reference) || i.RepoDigests.Contains(reference));
    }

    private static StoredImage Stored(string id, string tag, string repoDigest) =>
        new(id, [tag], [repoDigest], 0, new ImageRuntimeConfig([], [], [], "", "", "", [], new Dictionary<string, string>()), false, new Dictionary<string, string>());

    private static readonly Images NoImages = new();

    [Theory]
    [InlineData("")]
    [InlineData("localhost:5000/tools/busybox:1.36")]
    [InlineData(ImageId)]
    [InlineData($"localhost:5000/tools/busybox@{ManifestDigest}")]
    [InlineData($"localhost:5000/tools/busybox:1.37@{ManifestDigest}")]
    [InlineData($"localhost:5000/mirror/busybox@{ManifestDigest}")]
    public void TheCheckpointedImageByNameIdOrDigestIsTheSameImage(string requested) =>
        Assert.True(CheckpointedContainerMatch.SameImage(requested, Dump, NoImages));

    [Fact]
    public void ATagThisNodeResolvesToTheCheckpointedImageIsTheSameImageAndAnotherIsNot()
    {
        var images = new Images(Stored(ImageId, "localhost:5000/tools/busybox:stable", $"localhost:5000/tools/busybox@{ManifestDigest}"),
            Stored("sha256:4444444444444444444444444444444444444444444444444444444444444444", "localhost:5000/tools/busybox:1.37", $"localhost:5000/tools/busybox@{OtherDigest}"));
        Assert.True(CheckpointedContainerMatch.SameImage("localhost:5000/tools/busybox:stable", Dump, images));
        Assert.False(CheckpointedContainerMatch.SameImage("localhost:5000/tools/busybox:1.37", Dump, images));
        Assert.False(CheckpointedContainerMatch.SameImage("localhost:5000/tools/busybox:1.38", Dump, images));
        Assert.False(CheckpointedContainerMatch.SameImage($"localhost:5000/tools/busybox@{OtherDigest}", Dump, images));
        Assert.False(CheckpointedContainerMatch.SameImage("busybox:1.36", Dump, images));
    }

    [Fact]
    public void TheDockerHubShortNameIsItsNormalizedName()
    {
        var dump = Dump with { RootfsImageName = "docker.io/library/busybox:latest" };
        Assert.True(CheckpointedContainerMatch.SameImage("busybox", dump, NoImages));
        Assert.False(CheckpointedContainerMatch.SameImage("alpine", dump, NoImages));
    }

    private static readonly System.Text.Json.Nodes.JsonObject Spec =
        (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(
            """{"process":{"args":["/bin/counter","-n","5"]},"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/x"},{"type":"pid"}]}}""")!;

    private static ContainerConfig Config(string image, string[] command, string[] args)
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Image = new ImageSpec { Image = image } };
        config.Command.Add(command);
        config.Args.Add(args);
        return config;
    }

    [Theory]
    [InlineData(new string[0], new string[0])]
    [InlineData(new[] { "/bin/counter", "-n", "5" }, new string[0])]
    [InlineData(new[] { "/bin/counter" }, new[] { "-n", "5" })]
    [InlineData(new string[0], new[] { "-n", "5" })]
    public void TheCheckpointedArgvMatches(string[] command, string[] args) =>
        CheckpointedContainerMatch.Require(Config("localhost:5000/tools/busybox:1.36", command, args), Dump, Spec, NoImages, "/c/app.tar");

    [Theory]
    [InlineData(new[] { "/bin/other" }, new[] { "-n", "5" }, "command")]
    [InlineData(new[] { "/bin/counter" }, new[] { "-n", "6" }, "args")]
    [InlineData(new[] { "/bin/counter", "-n" }, new string[0], "args")]
    [InlineData(new string[0], new[] { "-n", "6" }, "args")]
    public void AnotherCommandOrArgsIsInvalidNamingTheContainerAndTheField(string[] command, string[] args, string field)
    {
        var e = Assert.Throws<InvalidRequestException>(() =>
            CheckpointedContainerMatch.Require(Config("localhost:5000/tools/busybox:1.36", command, args), Dump, Spec, NoImages, "/c/app.tar"));
        Assert.StartsWith($"container_configs \"app\": {field} [", e.Message);
        Assert.Contains("[\"/bin/counter\", \"-n\", \"5\"]", e.Message);
    }

    [Fact]
    public void AnotherImageIsInvalidNamingTheContainerAndTheField()
    {
        var e = Assert.Throws<InvalidRequestException>(() =>
            CheckpointedContainerMatch.Require(Config("localhost:5000/tools/alpine:3", [], []), Dump, Spec, NoImages, "/c/app.tar"));
        Assert.StartsWith("container_configs \"app\": image \"localhost:5000/tools/alpine:3\" is not the image checkpointed in /c/app.tar", e.Message);
        Assert.Contains($"localhost:5000/tools/busybox:1.36 localhost:5000/tools/busybox@{ManifestDigest}", e.Message);
    }

    [Fact]
    public void RestorePodChecksEveryConfigAgainstItsArchivesDumpsReadWithoutExtracting()
    {
        string archive = Path.Combine(_dir, "app.tar");
        using (var stream = File.Create(archive))
        using (var tar = new TarWriter(stream, TarEntryFormat.Pax))
        {
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "checkpoint/"));
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "checkpoint/pages-1.img") { DataStream = new MemoryStream(new byte[4096]) });
            foreach (var (name, text) in new[] { ("config.dump", System.Text.Json.JsonSerializer.Serialize(Dump, CheckpointJson.Default.CheckpointConfigDump)), ("spec.dump", Spec.ToJsonString()) })
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) });
            }
        }
        PodRestore.Plan Plan(ContainerConfig config) => new(new PodSandboxConfig(), [(config, archive)]);

        PodRestore.RequireCheckpointedContainers(Plan(Config($"localhost:5000/tools/busybox@{ManifestDigest}", [], [])), NoImages, CancellationToken.None);
        var e = Assert.Throws<InvalidRequestException>(() => PodRestore.RequireCheckpointedContainers(Plan(Config("localhost:5000/tools/busybox:1.36", ["sh"], [])), NoImages, CancellationToken.None));
        Assert.Contains("container_configs \"app\": command [\"sh\"]", e.Message);
        Assert.Equal(["app.tar"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName));
        var hostNetwork = new PodSandboxConfig
        {
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } } },
        };
        var mismatch = Assert.Throws<WrongStateException>(() => PodRestore.RequireCheckpointedContainers(
            new PodRestore.Plan(hostNetwork, [(Config($"localhost:5000/tools/busybox@{ManifestDigest}", [], []), archive)]), NoImages, CancellationToken.None));
        Assert.Contains("the host's network namespace (NODE)", mismatch.Message);

        File.WriteAllText(archive, "not a tar");
        Assert.Throws<InvalidRequestException>(() => PodRestore.RequireCheckpointedContainers(Plan(Config("", [], [])), NoImages, CancellationToken.None));
    }
}
