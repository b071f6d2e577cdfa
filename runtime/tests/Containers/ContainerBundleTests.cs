using CriShim.Runtime.Containers;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Containers;

/// <summary>The host work around the pure spec build: what is read before it, what is made after it.</summary>
public sealed class ContainerBundleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-bundle-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void DevicesAreStatedAndMustBeAbsoluteDeviceNodes()
    {
        var inputs = ContainerBundle.ReadHostInputs(new ContainerConfig { Devices = { new Device { HostPath = "/dev/null", ContainerPath = "/dev/n" } } });
        Assert.Equal(new NativeInterop.DeviceNode('c', 1, 3, 0x1B6), inputs.DeviceNodes["/dev/null"]);
        string file = Path.Combine(_dir, "plain");
        File.WriteAllText(file, "");
        Assert.Throws<InvalidRequestException>(() => ContainerBundle.ReadHostInputs(new ContainerConfig { Devices = { new Device { HostPath = file, ContainerPath = "/dev/x" } } }));
        Assert.Throws<InvalidRequestException>(() => ContainerBundle.ReadHostInputs(new ContainerConfig { Devices = { new Device { HostPath = "dev/null", ContainerPath = "/dev/x" } } }));
    }

    [Fact]
    public void OnlyAnUnprivilegedLocalhostProfileIsRead()
    {
        string path = Path.Combine(_dir, "profile.json");
        File.WriteAllText(path, """{"defaultAction":"SCMP_ACT_ERRNO"}""");
        ContainerConfig Config(string profile, bool privileged) => new()
        {
            Linux = new LinuxContainerConfig
            {
                SecurityContext = new LinuxContainerSecurityContext
                {
                    Privileged = privileged,
                    Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = profile },
                },
            },
        };
        Assert.Equal("SCMP_ACT_ERRNO", (string?)ContainerBundle.ReadHostInputs(Config(path, privileged: false)).SeccompLocalhostProfile!["defaultAction"]);
        Assert.Throws<InvalidRequestException>(() => ContainerBundle.ReadHostInputs(Config(Path.Combine(_dir, "missing.json"), privileged: false)));
        Assert.Null(ContainerBundle.ReadHostInputs(Config(Path.Combine(_dir, "missing.json"), privileged: true)).SeccompLocalhostProfile);
    }

    [Fact]
    public void PrepareMakesTheMissingDirectoriesAndWritesTheSpec()
    {
        string existing = Directory.CreateDirectory(Path.Combine(_dir, "existing")).FullName;
        File.SetUnixFileMode(existing, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string missing = Path.Combine(_dir, "host", "missing");
        string volumes = Path.Combine(_dir, "volumes");
        string volume = Path.Combine(volumes, "2F64617461");
        string bundle = Directory.CreateDirectory(Path.Combine(_dir, "bundle")).FullName;
        var spec = new System.Text.Json.Nodes.JsonObject { ["ociVersion"] = "1.0.2" };

        ContainerBundle.Prepare(new BuiltContainerSpec(spec, [existing, missing], [volume]), volumes, bundle, userNamespace: null);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(existing));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(missing));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(volume));
        Assert.Equal((UnixFileMode)0b111_001_001, File.GetUnixFileMode(volumes));
        Assert.Equal("""{"ociVersion":"1.0.2"}""", File.ReadAllText(Path.Combine(bundle, "config.json")));
    }
}
