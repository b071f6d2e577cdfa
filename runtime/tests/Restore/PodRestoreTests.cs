using CriShim.Runtime.Restore;
using CriShim.Runtime.Server;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Restore;

public class PodRestoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-podrestore-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private const string PodConfig = """{"metadata":{"name":"web","namespace":"default","uid":"u1"},"hostname":"web"}""";

    private void WriteManifest(string containers, string podConfig = PodConfig) =>
        File.WriteAllText(Path.Combine(_dir, "pod.json"),
            $$"""{"podSandboxId":"p","metadata":{"name":"web","namespace":"default","uid":"u1","attempt":0},"runtimeHandler":"runc","podSandboxConfig":{{podConfig}},"checkpointedTime":"2026-12-05T10:00:00Z","containers":[{{containers}}]}""");

    private static string Entry(string name, string archive) => $$"""{"name":"{{name}}","id":"x","attempt":0,"archive":"{{archive}}","bytes":1}""";

    private RestorePodRequest Request(params string[] names)
    {
        var request = new RestorePodRequest { CheckpointPath = _dir };
        foreach (string name in names) request.ContainerConfigs.Add(new ContainerConfig { Metadata = new ContainerMetadata { Name = name } });
        return request;
    }

    private void TwoContainers()
    {
        WriteManifest(Entry("alpha", "alpha.tar") + "," + Entry("beta", "beta.tar"));
        File.WriteAllText(Path.Combine(_dir, "alpha.tar"), "");
        File.WriteAllText(Path.Combine(_dir, "beta.tar"), "");
    }

    [Fact]
    public void ContainersAreMatchedByNameInTheCheckpointsOrderAndThePodConfigComesFromPodJsonWhenTheRequestHasNone()
    {
        TwoContainers();
        var plan = PodRestore.Validate(Request("beta", "alpha"));
        Assert.Equal(["alpha", "beta"], plan.Containers.Select(c => c.Config.Metadata.Name));
        Assert.Equal([Path.Combine(_dir, "alpha.tar"), Path.Combine(_dir, "beta.tar")], plan.Containers.Select(c => c.Archive));
        Assert.Equal("web", plan.SandboxConfig.Hostname);
        Assert.Equal("u1", plan.SandboxConfig.Metadata.Uid);

        var withConfig = Request("alpha", "beta");
        withConfig.Config = new PodSandboxConfig { Hostname = "new" };
        Assert.Equal("new", PodRestore.Validate(withConfig).SandboxConfig.Hostname);
    }

    [Theory]
    [InlineData("alpha")]
    [InlineData("alpha", "beta", "gamma")]
    [InlineData("alpha", "alpha", "beta")]
    public void ContainerConfigsMustNameExactlyTheCheckpointedContainers(params string[] names)
    {
        TwoContainers();
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request(names)));
    }

    [Fact]
    public void OptionsAreRefused()
    {
        TwoContainers();
        var request = Request("alpha", "beta");
        request.Options["tcp_established"] = "true";
        Assert.Contains("tcp_established", Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(request)).Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("relative/dir")]
    public void ACheckpointPathThatIsNotAbsoluteIsRefused(string path)
    {
        var request = Request("alpha");
        request.CheckpointPath = path;
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(request));
    }

    [Fact]
    public void AMissingDirectoryOrArchiveIsNotFound()
    {
        var request = Request("alpha", "beta");
        request.CheckpointPath = Path.Combine(_dir, "missing");
        Assert.Throws<NotFoundException>(() => PodRestore.Validate(request));
        TwoContainers();
        File.Delete(Path.Combine(_dir, "beta.tar"));
        Assert.Throws<NotFoundException>(() => PodRestore.Validate(Request("alpha", "beta")));
    }

    [Theory]
    [InlineData("../alpha.tar")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    [InlineData("link.tar")]
    [InlineData("dir.tar")]
    public void AnArchiveThatIsNotAPlainFileOfTheDirectoryIsRefused(string archive)
    {
        WriteManifest(Entry("alpha", archive));
        File.CreateSymbolicLink(Path.Combine(_dir, "link.tar"), "/etc/passwd");
        Directory.CreateDirectory(Path.Combine(_dir, "dir.tar"));
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha")));
    }

    [Fact]
    public void AMissingHugeOrMalformedPodJsonIsRefused()
    {
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha")));
        File.WriteAllText(Path.Combine(_dir, "pod.json"), "{\"containers\": [");
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha")));
        File.WriteAllText(Path.Combine(_dir, "pod.json"), new string(' ', (int)PodRestore.MaxManifestBytes) + "{}");
        Assert.Contains("more than", Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha"))).Message);
        File.Delete(Path.Combine(_dir, "pod.json"));
        File.CreateSymbolicLink(Path.Combine(_dir, "pod.json"), "/etc/hostname");
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha")));
        File.Delete(Path.Combine(_dir, "pod.json"));
        WriteManifest(Entry("alpha", "alpha.tar"), podConfig: """{"metadata":{"name":7}}""");
        File.WriteAllText(Path.Combine(_dir, "alpha.tar"), "");
        Assert.Throws<InvalidRequestException>(() => PodRestore.Validate(Request("alpha")));
    }
}
