using System.Text.Json.Nodes;
using CriShim.Runtime.Pods;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriShim.Runtime.Tests.Pods;

public class PodUserNamespaceTests
{
    private static IDMapping Map(uint containerId, uint hostId, uint length) => new() { ContainerId = containerId, HostId = hostId, Length = length };

    private static NamespaceOption Userns(NamespaceMode mode, IDMapping[]? uids = null, IDMapping[]? gids = null) => new()
    {
        UsernsOptions = new UserNamespace { Mode = mode, Uids = { uids ?? [] }, Gids = { gids ?? [] } },
    };

    private static NamespaceOption PodMode(uint hostId = 1000, uint length = 100000) =>
        Userns(NamespaceMode.Pod, [Map(0, hostId, length)], [Map(0, hostId, length)]);

    [Fact]
    public void NoOptionsAndNodeModeMeanTheHostUserNamespace()
    {
        Assert.Null(PodUserNamespace.Of(new NamespaceOption()));
        Assert.Null(PodUserNamespace.Of(Userns(NamespaceMode.Node)));
    }

    [Fact]
    public void PodModeKeepsTheOneMappingOfEachKind()
    {
        var userns = PodUserNamespace.Of(Userns(NamespaceMode.Pod, [Map(0, 1000, 100000)], [Map(0, 2000, 65536)]));

        Assert.NotNull(userns);
        Assert.Equal((0u, 1000u, 100000u), (userns.Uids.ContainerId, userns.Uids.HostId, userns.Uids.Length));
        Assert.Equal((0u, 2000u, 65536u), (userns.Gids.ContainerId, userns.Gids.HostId, userns.Gids.Length));
        var idMap = userns.RootfsIdMap(4242);
        Assert.Equal(("/proc/4242/ns/user", 1000u, 2000u), (idMap.UserNamespacePath, idMap.RootHostUid, idMap.RootHostGid));
    }

    public static TheoryData<string, NamespaceOption, string> Rejected => new()
    {
        { "two uid mappings", Userns(NamespaceMode.Pod, [Map(0, 1000, 100000), Map(0, 2000, 100000)], [Map(0, 1000, 100000)]), "exactly one uid mapping, got 2" },
        { "two gid mappings", Userns(NamespaceMode.Pod, [Map(0, 1000, 100000)], [Map(0, 1000, 100000), Map(0, 2000, 100000)]), "exactly one gid mapping, got 2" },
        { "no mappings", Userns(NamespaceMode.Pod), "exactly one uid mapping, got 0" },
        { "container id 0 unmapped", Userns(NamespaceMode.Pod, [Map(1, 1000, 100000)], [Map(1, 1000, 100000)]), "must map container id 0, it starts at 1" },
        { "empty range", PodMode(length: 0), "is empty or beyond the id range" },
        { "range past 2^32", PodMode(hostId: uint.MaxValue - 10, length: 100), "is empty or beyond the id range" },
        { "container mode", Userns(NamespaceMode.Container), "mode CONTAINER is not supported" },
        { "target mode", Userns(NamespaceMode.Target), "mode TARGET is not supported" },
        { "node mode with mappings", Userns(NamespaceMode.Node, [Map(0, 1000, 10)], [Map(0, 1000, 10)]), "mode NODE takes no uid or gid mappings" },
        { "host network", WithHost(PodMode(), o => o.Network = NamespaceMode.Node), "cannot share the host's network, PID or IPC namespace" },
        { "host pid", WithHost(PodMode(), o => o.Pid = NamespaceMode.Node), "cannot share the host's network, PID or IPC namespace" },
        { "host ipc", WithHost(PodMode(), o => o.Ipc = NamespaceMode.Node), "cannot share the host's network, PID or IPC namespace" },
    };

    private static NamespaceOption WithHost(NamespaceOption options, Action<NamespaceOption> change)
    {
        change(options);
        return options;
    }

    [Theory]
    [MemberData(nameof(Rejected))]
    public void InvalidRequestsAreRejected(string why, NamespaceOption options, string message)
    {
        var error = Assert.Throws<InvalidRequestException>(() => PodUserNamespace.Of(options));
        Assert.True(error.Message.Contains(message, StringComparison.Ordinal), $"{why}: {error.Message}");
    }

    private static PodSandboxRecord Pod(NamespaceOption options) => new()
    {
        Id = "pod1",
        Config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "p", Namespace = "n", Uid = "u" },
            Hostname = "p",
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = options } },
        }.ToByteArray(),
        RuntimeHandler = "crun",
        CreatedAtNanos = 1,
    };

    [Fact]
    public void InfraCreatesTheUserNamespaceAndTheNetworkNamespaceInsideIt()
    {
        var spec = InfraSpec.Build(Pod(PodMode()), "/rootfs", "/crishim/pod1", -998);

        var linux = spec["linux"]!.AsObject();
        var namespaces = linux["namespaces"]!.AsArray().Select(n => n!.AsObject()).ToList();
        Assert.Contains(namespaces, n => n["type"]!.GetValue<string>() == "user" && !n.ContainsKey("path"));
        // No path: a namespace created by the infra process is owned by the pod's user namespace.
        Assert.Contains(namespaces, n => n["type"]!.GetValue<string>() == "network" && !n.ContainsKey("path"));
        Assert.Contains(namespaces, n => n["type"]!.GetValue<string>() == "uts");
        Assert.Equal("""[{"containerID":0,"hostID":1000,"size":100000}]""", linux["uidMappings"]!.ToJsonString());
        Assert.Equal("""[{"containerID":0,"hostID":1000,"size":100000}]""", linux["gidMappings"]!.ToJsonString());
        Assert.Equal("p", spec["hostname"]!.GetValue<string>());
    }

    [Fact]
    public void InfraWithoutUserNamespaceJoinsThePinnedNetworkNamespace()
    {
        var pod = Pod(new NamespaceOption()) with { NetNsPath = "/run/crishim/netns/pod1" };

        var linux = InfraSpec.Build(pod, "/rootfs", "/crishim/pod1", -998)["linux"]!.AsObject();

        var namespaces = linux["namespaces"]!.AsArray().Select(n => n!.AsObject()).ToList();
        Assert.DoesNotContain(namespaces, n => n["type"]!.GetValue<string>() == "user");
        Assert.Contains(namespaces, n => n["type"]!.GetValue<string>() == "network" && n["path"]!.GetValue<string>() == pod.NetNsPath);
        Assert.False(linux.ContainsKey("uidMappings"));
    }

    [Fact]
    public void StateRootsAreOpenedForTraversalOnlyBelowSearchableDirectoriesAndOnlyOnThePathToThePodsFiles()
    {
        var closed = Directory.CreateTempSubdirectory("crishim-userns-");
        try
        {
            var config = new CriShim.Runtime.Config.CriShimConfig();
            config.State.Root = Path.Combine(closed.FullName, "root");
            config.State.RunRoot = Path.Combine(closed.FullName, "run");
            var paths = new CriShim.Runtime.Store.StatePaths(config.State);
            string root = CriShim.Runtime.Store.StateDirectory.Create(config.State.Root);
            string images = CriShim.Runtime.Store.StateDirectory.Create(Path.Combine(root, "images"));

            // CreateTempSubdirectory makes 0700 dirs: nobody else can pass through to the root.
            var error = Assert.Throws<WrongStateException>(() => PodUserNamespace.OpenForTraversal(paths));
            Assert.Contains($"{closed.FullName} (above {root}) is not searchable by others", error.Message);
            Assert.Equal(CriShim.Runtime.Store.StateDirectory.Private, File.GetUnixFileMode(root));

            File.SetUnixFileMode(closed.FullName, File.GetUnixFileMode(closed.FullName) | UnixFileMode.OtherExecute);
            PodUserNamespace.OpenForTraversal(paths);
            foreach (string traversed in new[] { root, config.State.RunRoot, paths.Rootfs, paths.Pods, paths.Containers, paths.PodsRun })
            {
                Assert.Equal(CriShim.Runtime.Store.StateDirectory.Traversable, File.GetUnixFileMode(traversed));
            }
            Assert.Equal(CriShim.Runtime.Store.StateDirectory.Private, File.GetUnixFileMode(images));
        }
        finally
        {
            closed.Delete(recursive: true);
        }
    }

    [Theory]
    // runc 1.1: user namespaces, but no idmapped bind mounts for the kubelet's volumes.
    [InlineData("""{"mountOptions":["rbind","rro"],"linux":{"namespaces":["mount","user"]}}""", false)]
    [InlineData("""{"mountOptions":["rbind","idmap"],"linux":{"namespaces":["mount","user"]}}""", true)]
    [InlineData("""{"mountOptions":["rbind","idmap"],"linux":{"namespaces":["mount"]}}""", false)]
    [InlineData("""{"mountOptions":["rbind","idmap"]}""", false)]
    // runc >= 1.2: idmapped mounts are a mount extension, not a mount option.
    [InlineData("""{"mountOptions":["rbind"],"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":true}}}}""", true)]
    [InlineData("""{"mountOptions":["rbind"],"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":false}}}}""", false)]
    public void UserNamespacesNeedTheNamespaceAndIdMappedMounts(string featuresJson, bool expected)
    {
        var features = System.Text.Json.JsonSerializer.Deserialize(featuresJson, CriShim.Runtime.Oci.OciJsonContext.Default.OciFeatures)!;
        Assert.Equal(expected, features.UserNamespaces);
    }

    private static JsonObject ContainerSpec(bool runtimeHasIdMappedMounts, string hostDir)
    {
        var pod = Pod(PodMode()) with { InfraPid = 4242, NetNsPath = "/run/crishim/netns/pod1" };
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "c" },
            Image = new ImageSpec { Image = "busybox" },
            Command = { "sh" },
            Mounts =
            {
                new Mount
                {
                    ContainerPath = "/data", HostPath = hostDir,
                    UidMappings = { Map(0, 1000, 100000) }, GidMappings = { Map(0, 1000, 100000) },
                },
            },
        };
        var image = new CriShim.Runtime.Images.StoredImage("sha256:1", [], [], 0,
            new CriShim.Runtime.Images.ImageRuntimeConfig([], [], [], "", "", "", [], new Dictionary<string, string>()), false, new Dictionary<string, string>());
        return CriShim.Runtime.Containers.ContainerSpecBuilder.Build(new CriShim.Runtime.Containers.ContainerSpecInput("c1", config, pod, hostDir, image,
            "/rootfs", Path.Combine(hostDir, "volumes"), new CriShim.Runtime.Containers.ResolvedUser(0, 0, [], "/root"), "cgroupfs", "",
            RuntimeHasIdMappedMounts: runtimeHasIdMappedMounts)).Spec;
    }

    [Fact]
    public void ContainersJoinThePodUserNamespaceAndIdMapTheKubeletsVolumes()
    {
        var hostDir = Directory.CreateTempSubdirectory("crishim-userns-");
        try
        {
            var spec = ContainerSpec(runtimeHasIdMappedMounts: true, hostDir.FullName);
            var linux = spec["linux"]!.AsObject();

            Assert.Contains("""{"type":"user","path":"/proc/4242/ns/user"}""", linux["namespaces"]!.AsArray().Select(n => n!.ToJsonString()));
            Assert.Equal("""[{"containerID":0,"hostID":1000,"size":100000}]""", linux["uidMappings"]!.ToJsonString());
            var data = spec["mounts"]!.AsArray().Single(m => m!["destination"]!.GetValue<string>() == "/data")!.AsObject();
            Assert.Contains("idmap", data["options"]!.AsArray().Select(o => o!.GetValue<string>()));
            Assert.Equal("""[{"containerID":0,"hostID":1000,"size":100000}]""", data["uidMappings"]!.ToJsonString());
            Assert.Equal("""[{"containerID":0,"hostID":1000,"size":100000}]""", data["gidMappings"]!.ToJsonString());

            var error = Assert.Throws<InvalidRequestException>(() => ContainerSpec(runtimeHasIdMappedMounts: false, hostDir.FullName));
            Assert.Equal("mount /data: runtime handler \"crun\" does not support idmapped mounts", error.Message);
        }
        finally
        {
            hostDir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AddToJoinsAnExistingNamespaceByPath()
    {
        var linux = new JsonObject();
        var namespaces = new JsonArray();

        PodUserNamespace.Of(PodMode())!.AddTo(linux, namespaces, PodUserNamespace.PathOf(77));

        Assert.Equal("""[{"type":"user","path":"/proc/77/ns/user"}]""", namespaces.ToJsonString());
        Assert.True(linux.ContainsKey("uidMappings") && linux.ContainsKey("gidMappings"));
    }
}
