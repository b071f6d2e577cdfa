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
                new ResolvedUser(0, 0, [], "/root"), "cgroupfs", criuConfig, AllowedAnnotations: allowed))["annotations"]!.AsObject();

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
