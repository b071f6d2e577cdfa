using System.Text.Json.Nodes;
using CriShim.Runtime.Restore;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Restore;

public class CheckpointedNamespacesTests
{
    private const string PodNetworkAndPid =
        """{"linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"/var/run/netns/x"},{"type":"pid","path":"/proc/7/ns/pid"}]}}""";

    private const string HostNetworkAndPid = """{"linux":{"namespaces":[{"type":"mount"}]}}""";

    private static JsonObject Spec(string json) => JsonNode.Parse(json)!.AsObject();

    private static PodSandboxConfig Sandbox(NamespaceMode network) =>
        new() { Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = network } } } };

    private static ContainerConfig Container(NamespaceMode pid) =>
        new() { Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext { NamespaceOptions = new NamespaceOption { Pid = pid } } } };

    [Fact]
    public void ADumpOfThePodsNetworkIntoAHostNetworkPodAndTheReverseAreAFailedPreconditionNamingBothModes()
    {
        var e = Assert.Throws<WrongStateException>(() =>
            CheckpointedNamespaces.Require(Spec(PodNetworkAndPid), Sandbox(NamespaceMode.Node), Container(NamespaceMode.Pod), "/a.tar"));
        Assert.Equal("checkpoint archive /a.tar was dumped in a network namespace of its pod or own, and the pod sandbox it is restored into uses " +
            "the host's network namespace (NODE): CRIU restores processes only into the kind of network namespace they were dumped in", e.Message);

        e = Assert.Throws<WrongStateException>(() =>
            CheckpointedNamespaces.Require(Spec(HostNetworkAndPid), Sandbox(NamespaceMode.Pod), Container(NamespaceMode.Node), "/a.tar"));
        Assert.StartsWith("checkpoint archive /a.tar was dumped in the host's network namespace (NODE), and the pod sandbox it is restored into uses a network namespace", e.Message);
    }

    [Fact]
    public void ADumpOfTheHostsPidNamespaceNeedsAHostPidContainerAndTheReverse()
    {
        string hostPidOnly = """{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/x"}]}}""";
        var e = Assert.Throws<WrongStateException>(() =>
            CheckpointedNamespaces.Require(Spec(hostPidOnly), Sandbox(NamespaceMode.Pod), Container(NamespaceMode.Container), "/a.tar"));
        Assert.Contains("the host's pid namespace (NODE), and the container config uses a pid namespace of its pod or own", e.Message);
        e = Assert.Throws<WrongStateException>(() =>
            CheckpointedNamespaces.Require(Spec(PodNetworkAndPid), Sandbox(NamespaceMode.Pod), Container(NamespaceMode.Node), "/a.tar"));
        Assert.Contains("and the container config uses the host's pid namespace (NODE)", e.Message);
    }

    [Fact]
    public void MatchingModesPassAndAMalformedNamespaceListIsInvalid()
    {
        CheckpointedNamespaces.Require(Spec(PodNetworkAndPid), Sandbox(NamespaceMode.Pod), Container(NamespaceMode.Container), "/a.tar");
        CheckpointedNamespaces.Require(Spec(PodNetworkAndPid), new PodSandboxConfig(), new ContainerConfig(), "/a.tar");
        CheckpointedNamespaces.Require(Spec(HostNetworkAndPid), Sandbox(NamespaceMode.Node), Container(NamespaceMode.Node), "/a.tar");

        Assert.Throws<InvalidRequestException>(() =>
            CheckpointedNamespaces.Require(Spec("""{"linux":{"namespaces":{"type":"network"}}}"""), new PodSandboxConfig(), new ContainerConfig(), "/a.tar"));
        Assert.Throws<InvalidRequestException>(() =>
            CheckpointedNamespaces.Require(Spec("""{"linux":{"namespaces":[{"path":"/x"}]}}"""), new PodSandboxConfig(), new ContainerConfig(), "/a.tar"));
    }
}
