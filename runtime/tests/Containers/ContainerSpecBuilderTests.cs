using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Containers;

public class ContainerSpecBuilderTests
{
    private static ImageRuntimeConfig Image(string[]? entrypoint = null, string[]? cmd = null, string[]? env = null) =>
        new(entrypoint ?? [], cmd ?? [], env ?? [], "", "", "", [], new Dictionary<string, string>());

    [Theory]
    [InlineData(new string[0], new string[0], new[] { "/entry", "-x" }, new[] { "default" }, new[] { "/entry", "-x", "default" })]
    [InlineData(new[] { "/cmd" }, new string[0], new[] { "/entry" }, new[] { "default" }, new[] { "/cmd" })]
    [InlineData(new[] { "/cmd" }, new[] { "a" }, new[] { "/entry" }, new[] { "default" }, new[] { "/cmd", "a" })]
    [InlineData(new string[0], new[] { "a", "b" }, new[] { "/entry" }, new[] { "default" }, new[] { "/entry", "a", "b" })]
    [InlineData(new string[0], new[] { "sh" }, new string[0], new[] { "default" }, new[] { "sh" })]
    public void CommandAndArgsFollowTheKubeletRules(string[] command, string[] args, string[] entrypoint, string[] cmd, string[] expected)
    {
        var config = new ContainerConfig();
        config.Command.Add(command);
        config.Args.Add(args);
        Assert.Equal(expected, ContainerSpecBuilder.Arguments(config, Image(entrypoint, cmd)));
    }

    [Fact]
    public void NoCommandAnywhereIsInvalid() =>
        Assert.Throws<InvalidRequestException>(() => ContainerSpecBuilder.Arguments(new ContainerConfig(), Image()));

    [Fact]
    public void ConfigEnvOverridesImageEnvAndDefaultsAreAdded()
    {
        var config = new ContainerConfig();
        config.Envs.Add(new KeyValue { Key = "A", Value = ByteString.CopyFromUtf8("from-config") });
        config.Envs.Add(new KeyValue { Key = "C", Value = ByteString.CopyFromUtf8("c=with=equals") });
        var env = ContainerSpecBuilder.Environment(config, Image(env: ["A=from-image", "B=kept"]), "/home/u");
        Assert.Equal(["A=from-config", "B=kept", "C=c=with=equals", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/u"], env);
    }

    [Fact]
    public void CapabilitiesDropAllThenAdd()
    {
        var security = new LinuxContainerSecurityContext
        {
            Capabilities = new Capability { DropCapabilities = { "ALL" }, AddCapabilities = { "net_admin", "CAP_SYS_TIME" } },
        };
        Assert.Equal(["CAP_NET_ADMIN", "CAP_SYS_TIME"], ContainerSpecBuilder.Capabilities(security, privileged: false));
        Assert.Equal(SpecDefaults.AllCapabilities, ContainerSpecBuilder.Capabilities(security, privileged: true));
        var unknown = new LinuxContainerSecurityContext { Capabilities = new Capability { AddCapabilities = { "FLY" } } };
        Assert.Throws<InvalidRequestException>(() => ContainerSpecBuilder.Capabilities(unknown, privileged: false));
    }

    [Fact]
    public void PrivilegedCapabilitiesFollowTheBoundingSetMask()
    {
        // A host root without CAP_SYS_RESOURCE (bit 24), as measured on the CI machine.
        var granted = SpecDefaults.FromMask(0x000001fffeffffffUL);
        Assert.Equal(40, granted.Length);
        Assert.DoesNotContain("CAP_SYS_RESOURCE", granted);
        Assert.Equal("CAP_CHOWN", granted[0]);
        Assert.Equal("CAP_CHECKPOINT_RESTORE", granted[^1]);
        Assert.Equal(SpecDefaults.KnownCapabilities, SpecDefaults.FromMask(ulong.MaxValue));
    }

    [Theory]
    [InlineData("org.criu.config", "org.criu.config", true)]
    [InlineData("org.criu.config", "org.criu.config.extra", false)]
    [InlineData("run.oci.*", "run.oci.hooks.stdout", true)]
    [InlineData("run.oci.*", "org.criu.config", false)]
    public void AnAnnotationIsAllowedByExactKeyOrStarPrefix(string pattern, string key, bool allowed) =>
        Assert.Equal(allowed, ContainerSpecBuilder.IsAllowedAnnotation([pattern], key));

    [Fact]
    public void CriAnnotationsReachTheOciSpecOnlyWhenTheNodeAllowsThem()
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "c" },
            Image = new ImageSpec { Image = "busybox" },
            Command = { "sh" },
            Annotations = { ["org.criu.config"] = "/tmp/pod-author.conf", ["run.oci.hooks.stdout"] = "/etc/cron.d/x", ["note"] = "n" },
        };
        var pod = new CriShim.Runtime.Pods.PodSandboxRecord
        {
            Id = "pod1",
            RuntimeHandler = "runc",
            CreatedAtNanos = 1,
            Config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "n", Uid = "u" } }.ToByteArray(),
        };
        var image = new StoredImage("sha256:1", [], [], 0, Image(), false, new Dictionary<string, string>());
        System.Text.Json.Nodes.JsonObject Annotations(string criuConfig, params string[] allowed) =>
            ContainerSpecBuilder.Build(new ContainerSpecInput("c1", config, pod, "/pods/pod1", image, "/rootfs", "/volumes",
                new ResolvedUser(0, 0, [], "/root"), "cgroupfs", criuConfig, AllowedAnnotations: allowed)).Spec["annotations"]!.AsObject();

        var closed = Annotations("");
        Assert.False(closed.ContainsKey("org.criu.config"));
        Assert.False(closed.ContainsKey("run.oci.hooks.stdout"));
        Assert.False(closed.ContainsKey("note"));
        Assert.Equal("c", (string?)closed["io.kubernetes.cri.container-name"]);
        // The operator's own checkpoint.criu_config still reaches the runtime.
        Assert.Equal("/etc/crishim/criu.conf", (string?)Annotations("/etc/crishim/criu.conf")["org.criu.config"]);

        var open = Annotations("", "org.criu.config", "no*");
        Assert.Equal("/tmp/pod-author.conf", (string?)open["org.criu.config"]);
        Assert.Equal("n", (string?)open["note"]);
        Assert.False(open.ContainsKey("run.oci.hooks.stdout"));
    }

    [Fact]
    public void NegativeResourcesAreRefused() =>
        Assert.Throws<InvalidRequestException>(() => ContainerSpecBuilder.UpdatableResources(new LinuxContainerResources { CpuShares = -1 }));

    [Fact]
    public void ResourcesBecomeOciFields()
    {
        var json = ContainerSpecBuilder.UpdatableResources(new LinuxContainerResources
        {
            MemoryLimitInBytes = 1 << 20, CpuQuota = 50000, CpuPeriod = 100000, CpusetCpus = "0",
        }).ToJsonString();
        Assert.Equal("""{"memory":{"limit":1048576},"cpu":{"quota":50000,"period":100000,"cpus":"0"}}""", json);
    }
}

public class ContainerUserResolverTests : IDisposable
{
    private readonly string _rootfs = Directory.CreateTempSubdirectory("crishim-user-").FullName;

    public ContainerUserResolverTests()
    {
        Directory.CreateDirectory(Path.Combine(_rootfs, "etc"));
        File.WriteAllText(Path.Combine(_rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n");
        File.WriteAllText(Path.Combine(_rootfs, "etc", "group"), "root:x:0:\nwww-data:x:33:\ntester:x:1000:\nextra:x:50000:tester\n");
    }

    public void Dispose() => Directory.Delete(_rootfs, true);

    [Fact]
    public void ImageUserByNameResolvesUidGidHome()
    {
        var user = ContainerUserResolver.Resolve(_rootfs, null, "", null, "www-data", [], strictGroups: false);
        Assert.Equal(new ResolvedUser(33, 33, [], "/var/www"), user with { AdditionalGids = [] });
    }

    [Fact]
    public void GroupMembershipsMergeUnlessStrict()
    {
        var merged = ContainerUserResolver.Resolve(_rootfs, 1000, "", null, "", [1234], strictGroups: false);
        Assert.Equal([50000, 1234], merged.AdditionalGids);
        var strict = ContainerUserResolver.Resolve(_rootfs, 1000, "", null, "", [1234], strictGroups: true);
        Assert.Equal([1234], strict.AdditionalGids);
    }

    [Fact]
    public void SecurityContextOverridesImageUserAndGroup()
    {
        var user = ContainerUserResolver.Resolve(_rootfs, 4242, "", 7, "www-data:33", [], strictGroups: false);
        Assert.Equal((4242L, 7L, "/"), (user.Uid, user.Gid, user.Home));
    }

    [Fact]
    public void AccountFilesAreReadInsideTheRootfsWhereverTheirSymlinksPoint()
    {
        // A host file with a user the image does not have, named by an absolute symlink of the image's /etc.
        string host = Directory.CreateTempSubdirectory("crishim-host-etc-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(host, "passwd"), "hostonly:x:4711:4711::/home/hostonly:/bin/sh\n");
            Directory.Delete(Path.Combine(_rootfs, "etc"), recursive: true);
            Directory.CreateSymbolicLink(Path.Combine(_rootfs, "etc"), host);
            Assert.Throws<InvalidRequestException>(() => ContainerUserResolver.Resolve(_rootfs, null, "", null, "hostonly", [], false));

            // The same absolute link means the image's own file when it resolves inside the rootfs.
            Directory.CreateDirectory(Path.Combine(_rootfs, host.TrimStart('/')));
            File.WriteAllText(Path.Combine(_rootfs, host.TrimStart('/'), "passwd"), "hostonly:x:99:98::/in-image:/bin/sh\n");
            var user = ContainerUserResolver.Resolve(_rootfs, null, "", null, "hostonly", [], false);
            Assert.Equal((99L, 98L, "/in-image"), (user.Uid, user.Gid, user.Home));
        }
        finally
        {
            Directory.Delete(host, recursive: true);
        }
    }

    [Fact]
    public void UnknownNamesAreInvalidArguments()
    {
        Assert.Throws<InvalidRequestException>(() => ContainerUserResolver.Resolve(_rootfs, null, "nobody-here", null, "", [], false));
        Assert.Throws<InvalidRequestException>(() => ContainerUserResolver.Resolve(_rootfs, null, "", null, "tester:nogroup", [], false));
    }
}

public class CgroupPathsTests
{
    [Theory]
    [InlineData("cgroupfs", "", "abc", "/crishim/crishim-abc")]
    [InlineData("cgroupfs", "/kubepods/besteffort/pod1/", "abc", "/kubepods/besteffort/pod1/crishim-abc")]
    [InlineData("systemd", "kubepods-besteffort-pod1.slice", "abc", "kubepods-besteffort-pod1.slice:crishim:abc")]
    [InlineData("systemd", "", "abc", "system.slice:crishim:abc")]
    public void PathsFollowTheDriver(string driver, string parent, string id, string expected) =>
        Assert.Equal(expected, CgroupPaths.For(driver, parent, id));

    [Theory]
    [InlineData("cgroupfs", "relative/parent")]
    [InlineData("cgroupfs", "/a/../b")]
    [InlineData("systemd", "/kubepods")]
    public void BadParentsAreRefused(string driver, string parent) =>
        Assert.Throws<InvalidRequestException>(() => CgroupPaths.Validate(driver, parent));

    [Theory]
    [InlineData("SIGTERM", 15)]
    [InlineData("TERM", 15)]
    [InlineData("sigusr1", 10)]
    [InlineData("9", 9)]
    [InlineData("SIGRTMIN", 34)]
    public void SignalsParse(string name, int number) => Assert.Equal(number, Signals.Parse(name));

    [Fact]
    public void UnknownSignalIsInvalid() => Assert.Throws<InvalidRequestException>(() => Signals.Parse("SIGBOGUS"));
}

/// <summary>The whole spec Build makes from a container config, a pod and an image: no host, no runtime.</summary>
public class BuiltContainerSpecTests
{
    private static readonly ImageRuntimeConfig BusyboxConfig =
        new(["/bin/entry"], ["default-arg"], ["PATH=/image/bin", "IMAGE=1"], "/image-wd", "", "", ["/data", "/cache/"], new Dictionary<string, string>());

    private static ContainerConfig Config(Action<ContainerConfig>? change = null)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "c" },
            Image = new ImageSpec { Image = "busybox" },
            Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext(), Resources = new LinuxContainerResources() },
        };
        change?.Invoke(config);
        return config;
    }

    private static CriShim.Runtime.Pods.PodSandboxRecord Pod(NamespaceOption? namespaces = null, string netns = "/run/crishim/netns/pod1") => new()
    {
        Id = "pod1",
        RuntimeHandler = "runc",
        CreatedAtNanos = 1,
        InfraPid = 4242,
        NetNsPath = netns,
        ShmPath = "/run/crishim/pods/pod1/shm",
        CgroupParent = "/kubepods/pod1",
        Config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "p", Namespace = "n", Uid = "u" },
            Hostname = "pod-host",
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = namespaces ?? new NamespaceOption() } },
        }.ToByteArray(),
    };

    private static BuiltContainerSpec Build(ContainerConfig config, CriShim.Runtime.Pods.PodSandboxRecord? pod = null, ResolvedUser? user = null,
        ContainerHostInputs? host = null, IReadOnlyDictionary<Mount, string>? imageVolumes = null, int targetPid = 0) =>
        ContainerSpecBuilder.Build(new ContainerSpecInput("c1", config, pod ?? Pod(), "/state/pods/pod1",
            new StoredImage("sha256:1", [], [], 0, BusyboxConfig, false, new Dictionary<string, string>()), "/state/rootfs/c1",
            "/state/containers/c1/volumes", user ?? new ResolvedUser(1000, 1001, [5, 6], "/home/u"), "cgroupfs", "",
            ImageVolumeSources: imageVolumes, TargetContainerPid: targetPid, HostInputs: host));

    private static JsonObject MountAt(JsonObject spec, string destination) =>
        spec["mounts"]!.AsArray().Single(m => (string?)m!["destination"] == destination)!.AsObject();

    private static List<string> Options(JsonObject mount) => [.. mount["options"]!.AsArray().Select(o => o!.GetValue<string>())];

    private static List<string> Strings(JsonNode? array) => [.. array!.AsArray().Select(o => o!.GetValue<string>())];

    [Fact]
    public void BuildTouchesNothingAndNamesTheDirectoriesTheCreatePathMakes()
    {
        string missing = $"/nonexistent-crishim-{Guid.NewGuid():N}";
        var config = Config(c => c.Mounts.Add(new Mount { ContainerPath = "/host", HostPath = missing }));
        var built = Build(config);
        Assert.False(Path.Exists(missing));
        Assert.False(Path.Exists("/state/containers/c1/volumes"));
        Assert.Equal([missing], built.BindSources);
        // The image's two volumes, each under the volumes dir by the hex of its destination.
        Assert.Equal(["/state/containers/c1/volumes/2F64617461", "/state/containers/c1/volumes/2F6361636865"], built.ImageConfigVolumes);
        Assert.Equal("/state/containers/c1/volumes/2F64617461", (string?)MountAt(built.Spec, "/data")["source"]);
        // The same input builds the same spec again.
        Assert.Equal(built.Spec.ToJsonString(), Build(config).Spec.ToJsonString());
    }

    [Fact]
    public void ProcessTakesArgsEnvCwdAndUserFromTheConfigOverTheImage()
    {
        var spec = Build(Config(c =>
        {
            c.Args.Add("own-arg");
            c.Envs.Add(new KeyValue { Key = "PATH", Value = ByteString.CopyFromUtf8("/config/bin") });
            c.WorkingDir = "/config-wd";
            c.Tty = true;
            c.Linux.SecurityContext.NoNewPrivs = true;
            c.Linux.Resources.OomScoreAdj = 500;
        })).Spec;
        var process = spec["process"]!.AsObject();
        Assert.Equal(["/bin/entry", "own-arg"], Strings(process["args"]));
        Assert.Equal(["PATH=/config/bin", "IMAGE=1", "HOME=/home/u"], Strings(process["env"]));
        Assert.Equal("/config-wd", (string?)process["cwd"]);
        Assert.True((bool)process["terminal"]!);
        Assert.True((bool)process["noNewPrivileges"]!);
        Assert.Equal(500, (int)process["oomScoreAdj"]!);
        Assert.Equal("""{"uid":1000,"gid":1001,"additionalGids":[5,6]}""", process["user"]!.ToJsonString());
        Assert.Equal("/image-wd", (string?)Build(Config()).Spec["process"]!["cwd"]);
        Assert.Equal(["/bin/entry", "default-arg"], Strings(Build(Config()).Spec["process"]!["args"]));
    }

    [Fact]
    public void AnUnprivilegedContainerIsConfined()
    {
        var spec = Build(Config(c => c.Linux.SecurityContext.Capabilities = new Capability
        {
            DropCapabilities = { "CHOWN" }, AddAmbientCapabilities = { "NET_ADMIN" },
        })).Spec;
        var capabilities = spec["process"]!["capabilities"]!.AsObject();
        List<string> expected = [.. SpecDefaults.Capabilities.Where(c => c != "CAP_CHOWN"), "CAP_NET_ADMIN"];
        foreach (string set in new[] { "bounding", "effective", "permitted" }) Assert.Equal(expected, Strings(capabilities[set]));
        Assert.Equal(["CAP_NET_ADMIN"], Strings(capabilities["ambient"]));
        Assert.Equal(["CAP_NET_ADMIN"], Strings(capabilities["inheritable"]));
        var linux = spec["linux"]!.AsObject();
        Assert.Equal(SpecDefaults.MaskedPaths, Strings(linux["maskedPaths"]));
        Assert.Equal(SpecDefaults.ReadonlyPaths, Strings(linux["readonlyPaths"]));
        Assert.Contains("ro", Options(MountAt(spec, "/sys")));
        Assert.Equal("""[{"allow":false,"access":"rwm"}]""", linux["resources"]!["devices"]!.ToJsonString());
    }

    [Fact]
    public void ThePodsOwnMaskedAndReadonlyPathsReplaceTheDefaults()
    {
        var linux = Build(Config(c =>
        {
            c.Linux.SecurityContext.MaskedPaths.Add("/proc/secret");
            c.Linux.SecurityContext.ReadonlyPaths.Add("/proc/ro");
        })).Spec["linux"]!.AsObject();
        Assert.Equal(["/proc/secret"], Strings(linux["maskedPaths"]));
        Assert.Equal(["/proc/ro"], Strings(linux["readonlyPaths"]));
    }

    [Fact]
    public void APrivilegedContainerHasEverythingAndNoConfinement()
    {
        var spec = Build(Config(c =>
        {
            c.Linux.SecurityContext.Privileged = true;
            c.Linux.SecurityContext.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault };
        })).Spec;
        Assert.Equal(SpecDefaults.AllCapabilities, Strings(spec["process"]!["capabilities"]!["bounding"]));
        var linux = spec["linux"]!.AsObject();
        Assert.False(linux.ContainsKey("maskedPaths"));
        Assert.False(linux.ContainsKey("readonlyPaths"));
        Assert.False(linux.ContainsKey("seccomp"));
        Assert.DoesNotContain("ro", Options(MountAt(spec, "/sys")));
        Assert.Contains("""{"allow":true,"access":"rwm"}""", linux["resources"]!["devices"]!.AsArray().Select(r => r!.ToJsonString()));
    }

    [Fact]
    public void SeccompIsTheRuntimeDefaultTheLocalhostProfileReadBeforeOrNone()
    {
        JsonNode? Seccomp(SecurityProfile? profile, ContainerHostInputs? host = null) =>
            Build(Config(c => c.Linux.SecurityContext.Seccomp = profile), host: host).Spec["linux"]!["seccomp"];
        Assert.Null(Seccomp(null));
        Assert.Null(Seccomp(new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Unconfined }));
        Assert.Equal(SpecDefaults.RuntimeDefaultSeccomp().ToJsonString(),
            Seccomp(new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault })!.ToJsonString());
        var localhost = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = "/profiles/p.json" };
        var profile = new JsonObject { ["defaultAction"] = "SCMP_ACT_LOG" };
        Assert.Equal("""{"defaultAction":"SCMP_ACT_LOG"}""", Seccomp(localhost, new ContainerHostInputs(new Dictionary<string, DeviceNode>(), profile))!.ToJsonString());
        // Build never reads the file itself.
        Assert.Throws<InvalidOperationException>(() => Seccomp(localhost));
    }

    [Fact]
    public void DevicesComeFromTheNodesReadBefore()
    {
        var host = new ContainerHostInputs(new Dictionary<string, DeviceNode> { ["/dev/fuse"] = new('c', 10, 229, 0x1B6) }, null);
        var linux = Build(Config(c => c.Devices.Add(new Device { HostPath = "/dev/fuse", ContainerPath = "/dev/fuse-in", Permissions = "rw" })),
            host: host).Spec["linux"]!.AsObject();
        Assert.Equal("""[{"path":"/dev/fuse-in","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}]""", linux["devices"]!.ToJsonString());
        Assert.Equal("""{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"}""", linux["resources"]!["devices"]![1]!.ToJsonString());
        Assert.Throws<InvalidRequestException>(() =>
            Build(Config(c => c.Devices.Add(new Device { HostPath = "/dev/fuse", ContainerPath = "/dev/fuse", Permissions = "rwx" })), host: host));
        Assert.Throws<InvalidRequestException>(() =>
            Build(Config(c => c.Devices.Add(new Device { HostPath = "/dev/fuse", ContainerPath = "fuse" })), host: host));
    }

    [Fact]
    public void ResourcesAndTheCgroupFollowTheConfig()
    {
        var linux = Build(Config(c => c.Linux.Resources = new LinuxContainerResources { MemoryLimitInBytes = 1 << 26, CpuShares = 512 }))
            .Spec["linux"]!.AsObject();
        Assert.Equal(1 << 26, (long)linux["resources"]!["memory"]!["limit"]!);
        Assert.Equal(512, (long)linux["resources"]!["cpu"]!["shares"]!);
        Assert.Equal("/kubepods/pod1/crishim-c1", (string?)linux["cgroupsPath"]);
        Assert.Throws<InvalidRequestException>(() => Build(Config(c => c.Linux.Resources.CpuPeriod = 10)));
    }

    [Fact]
    public void NamespacesJoinThePodsInfraAsTheModesSay()
    {
        List<string> Namespaces(NamespaceOption pod, NamespaceOption container, string netns = "/run/crishim/netns/pod1", int target = 0) =>
            [.. Build(Config(c => c.Linux.SecurityContext.NamespaceOptions = container), Pod(pod, netns), targetPid: target)
                .Spec["linux"]!["namespaces"]!.AsArray().Select(n => n!.ToJsonString())];

        var podMode = Namespaces(new NamespaceOption { Ipc = NamespaceMode.Pod }, new NamespaceOption { Pid = NamespaceMode.Pod });
        Assert.Equal([
            """{"type":"mount"}""",
            """{"type":"network","path":"/run/crishim/netns/pod1"}""",
            """{"type":"uts","path":"/proc/4242/ns/uts"}""",
            """{"type":"ipc","path":"/proc/4242/ns/ipc"}""",
            """{"type":"pid","path":"/proc/4242/ns/pid"}""",
        ], podMode);
        Assert.Contains("""{"type":"pid"}""", Namespaces(new NamespaceOption(), new NamespaceOption { Pid = NamespaceMode.Container }));
        Assert.Contains("""{"type":"pid","path":"/proc/777/ns/pid"}""",
            Namespaces(new NamespaceOption(), new NamespaceOption { Pid = NamespaceMode.Target, TargetId = "t" }, target: 777));
        // The host's network, IPC and PID: nothing to join, and no hostname of the pod's.
        var host = Namespaces(new NamespaceOption { Ipc = NamespaceMode.Node }, new NamespaceOption { Pid = NamespaceMode.Node }, netns: "");
        Assert.Equal(["""{"type":"mount"}"""], host);
        Assert.Null(Build(Config(), Pod(netns: "")).Spec["hostname"]);
        Assert.Equal("pod-host", (string?)Build(Config()).Spec["hostname"]);
    }

    [Fact]
    public void AUserNamespacedPodsContainersJoinItWithItsMappings()
    {
        var userns = new NamespaceOption
        {
            UsernsOptions = new UserNamespace
            {
                Mode = NamespaceMode.Pod,
                Uids = { new IDMapping { ContainerId = 0, HostId = 100000, Length = 65536 } },
                Gids = { new IDMapping { ContainerId = 0, HostId = 200000, Length = 65536 } },
            },
        };
        var linux = Build(Config(), Pod(userns)).Spec["linux"]!.AsObject();
        Assert.Contains("""{"type":"user","path":"/proc/4242/ns/user"}""", linux["namespaces"]!.AsArray().Select(n => n!.ToJsonString()));
        Assert.Equal("""[{"containerID":0,"hostID":100000,"size":65536}]""", linux["uidMappings"]!.ToJsonString());
        Assert.Equal("""[{"containerID":0,"hostID":200000,"size":65536}]""", linux["gidMappings"]!.ToJsonString());
        Assert.False(Build(Config()).Spec["linux"]!.AsObject().ContainsKey("uidMappings"));
    }

    [Fact]
    public void MountsFollowTheKubeletsOptionsAndOverrideDefaults()
    {
        var imageVolume = new Mount { ContainerPath = "/models", Image = new ImageSpec { Image = "models:1" } };
        var spec = Build(Config(c =>
        {
            c.Mounts.Add(new Mount { ContainerPath = "/etc/hosts", HostPath = "/kubelet/hosts", Readonly = true });
            c.Mounts.Add(new Mount { ContainerPath = "/shared/inner", HostPath = "/kubelet/inner" });
            c.Mounts.Add(new Mount { ContainerPath = "/shared", HostPath = "/kubelet/shared", Propagation = MountPropagation.PropagationBidirectional });
            c.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = "/kubelet/data" });
            c.Mounts.Add(imageVolume);
        }), imageVolumes: new Dictionary<Mount, string> { [imageVolume] = "/state/image-volumes/models" }).Spec;

        Assert.Equal("/kubelet/hosts", (string?)MountAt(spec, "/etc/hosts")["source"]);
        Assert.Equal(["rbind", "rprivate", "ro"], Options(MountAt(spec, "/etc/hosts")));
        Assert.Equal(["rbind", "rshared"], Options(MountAt(spec, "/shared")));
        Assert.Equal("rshared", (string?)spec["linux"]!["rootfsPropagation"]);
        // The kubelet's /data replaces the image's volume there; the image's /cache stays.
        Assert.Equal("/kubelet/data", (string?)MountAt(spec, "/data")["source"]);
        Assert.Equal("/state/containers/c1/volumes/2F6361636865", (string?)MountAt(spec, "/cache")["source"]);
        var destinations = spec["mounts"]!.AsArray().Select(m => (string)m!["destination"]!).ToList();
        Assert.True(destinations.IndexOf("/shared") < destinations.IndexOf("/shared/inner"), "a parent mount comes before its child");
        Assert.Equal("/run/crishim/pods/pod1/shm", (string?)MountAt(spec, "/dev/shm")["source"]);
        Assert.Equal("/state/pods/pod1/resolv.conf", (string?)MountAt(spec, "/etc/resolv.conf")["source"]);
        // An image volume: read-only, no setuid or devices, and never idmapped by the runtime.
        Assert.Equal(["rbind", "rprivate", "ro", "nosuid", "nodev"], Options(MountAt(spec, "/models")));
        Assert.Equal("/state/image-volumes/models", (string?)MountAt(spec, "/models")["source"]);
        Assert.Single(destinations, d => d == "/etc/hosts");
        Assert.Throws<InvalidRequestException>(() => Build(Config(c => c.Mounts.Add(new Mount { ContainerPath = "/x", HostPath = "/a/../etc" }))));
        Assert.Throws<InvalidRequestException>(() => Build(Config(c => c.Mounts.Add(new Mount { ContainerPath = "rel", HostPath = "/a" }))));
    }

    [Fact]
    public void TheSpecsRootIsTheMountedRootfs()
    {
        var spec = Build(Config(c => c.Linux.SecurityContext.ReadonlyRootfs = true)).Spec;
        Assert.Equal("""{"path":"/state/rootfs/c1","readonly":true}""", spec["root"]!.ToJsonString());
        Assert.Equal("pod1", (string?)spec["annotations"]!["io.kubernetes.cri.sandbox-id"]);
    }
}
