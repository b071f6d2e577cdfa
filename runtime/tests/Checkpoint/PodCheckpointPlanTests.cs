using CriShim.Runtime.Checkpoint;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Checkpoint;

public class PodCheckpointPlanTests : IDisposable
{
    private static readonly CriuDumpOptions Defaults = new(TcpEstablished: false, ExtUnixSk: true);
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-podplan-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private CheckpointPodRequest Request(params string[] containerIds)
    {
        var request = new CheckpointPodRequest { PodSandboxId = "pod", OutputPath = _dir };
        request.ContainerIds.Add(containerIds);
        return request;
    }

    [Fact]
    public void AValidRequestKeepsItsContainersInOrderAndTheConfiguredDumpOptions()
    {
        var plan = PodCheckpointPlan.From(Request("b", "a"), Defaults);
        Assert.Equal(_dir, plan.OutputPath);
        Assert.Equal(["b", "a"], plan.ContainerIds);
        Assert.Equal(Defaults, plan.DumpOptions);
    }

    [Theory]
    [InlineData("")]
    [InlineData("relative/dir")]
    [InlineData("/no/such/crishim/dir")]
    public void AnOutputPathThatIsNotAnAbsoluteExistingDirectoryIsRefused(string outputPath)
    {
        var request = Request("a");
        request.OutputPath = outputPath;
        Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.From(request, Defaults));
    }

    [Fact]
    public void AFileOrANonEmptyDirectoryAsOutputPathIsRefusedAndLeftAlone()
    {
        string file = Path.Combine(_dir, "x");
        File.WriteAllText(file, "mine");
        var request = Request("a");
        var nonEmpty = Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.From(request, Defaults));
        Assert.Contains("not empty", nonEmpty.Message);
        request.OutputPath = file;
        Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.From(request, Defaults));
        Assert.Equal("mine", File.ReadAllText(file));
    }

    [Theory]
    [InlineData]
    [InlineData("a", "")]
    [InlineData("a", "b", "a")]
    public void ContainerIdsMustBeNonEmptyAndDistinct(params string[] containerIds) =>
        Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.From(Request(containerIds), Defaults));

    [Fact]
    public void KnownOptionsOverrideTheConfiguration()
    {
        var request = Request("a");
        request.Options.Add(PodCheckpointPlan.TcpEstablishedOption, "true");
        request.Options.Add(PodCheckpointPlan.ExtUnixSkOption, "false");
        Assert.Equal(new CriuDumpOptions(TcpEstablished: true, ExtUnixSk: false), PodCheckpointPlan.From(request, Defaults).DumpOptions);
    }

    [Theory]
    [InlineData("leave_running", "true")]
    [InlineData("tcp_established", "yes")]
    [InlineData("tcp_established", "")]
    public void UnknownOptionsAndBadValuesAreRefused(string key, string value)
    {
        var request = Request("a");
        request.Options.Add(key, value);
        var e = Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.From(request, Defaults));
        Assert.Contains(key, e.Message);
    }

    [Theory]
    [InlineData("app", "app.tar")]
    [InlineData("pod", "pod.tar")]
    public void AnArchiveIsNamedAfterItsContainer(string name, string expected) =>
        Assert.Equal(expected, PodCheckpointPlan.ArchiveName(name));

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("../escape")]
    public void ANameThatIsNotAPlainFileNameIsRefused(string name) =>
        Assert.Throws<InvalidRequestException>(() => PodCheckpointPlan.ArchiveName(name));
}
