using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// `make deb`'s package on this very machine: dpkg -i, the installed binary, every file and its mode, then
/// dpkg -r and dpkg -P leave the host as it was. Whatever happens, the package is purged at the end.
/// </summary>
public class DebianPackageTests
{
    private const string Package = "crishim";

    /// <summary>Every path the package installs, with its mode.</summary>
    private static readonly Dictionary<string, int> PackageFiles = new()
    {
        ["/usr/bin/crishim"] = 0b111_101_101,
        ["/etc/crishim/crishim.toml"] = 0b110_100_100,
        ["/lib/systemd/system/crishim.service"] = 0b110_100_100,
        ["/usr/share/crishim/10-crishim-bridge.conflist"] = 0b110_100_100,
        ["/usr/share/crishim/crictl.yaml"] = 0b110_100_100,
        ["/usr/share/man/man8/crishim.8.gz"] = 0b110_100_100,
    };

    private const string CniConfDir = "/etc/cni/net.d";
    private const string Conflist = "/etc/cni/net.d/10-crishim-bridge.conflist";
    private const string CrictlConfig = "/etc/crictl.yaml";

    /// <summary>What postinst adds on a host without CNI config or crictl config (as this one is, or the test skips).</summary>
    private static readonly string[] PostinstFiles = [Conflist, CrictlConfig];

    /// <summary>Everything the package or its postinst may create; all absent before and after the test.</summary>
    private static readonly string[] Footprint = [.. PackageFiles.Keys, .. PostinstFiles, "/etc/crishim", "/usr/share/crishim", "/etc/cni"];

    [DebianPackageFact]
    public async Task InstallsRunsAndRemovesCleanly()
    {
        string binary = Environment.GetEnvironmentVariable("CRISHIM_BINARY")!;
        string outDir = Directory.CreateTempSubdirectory("crishim-deb-").FullName;
        try
        {
            string deb = HostCommand.Output("bash", Path.Combine(Daemon.RepositoryRoot(), "scripts", "build-deb.sh"), binary, outDir).Trim();
            string control = HostCommand.Output("dpkg-deb", "--field", deb);
            Assert.Contains("Depends: runc | crun, conmon, catatonit, containernetworking-plugins", control);
            Assert.Contains("Recommends: criu (>= 3.16)", control);
            Assert.Equal("/etc/crishim/crishim.toml\n", HostCommand.Output("dpkg-deb", "--info", deb, "conffiles"));

            HostCommand.Output("dpkg", "-i", deb);
            Assert.Equal(HostCommand.Output(binary, "--version"), HostCommand.Output("/usr/bin/crishim", "--version"));
            // Host-independent: the runc handler names no path, so each node picks its own runc at start-up.
            string shippedConfig = File.ReadAllText("/etc/crishim/crishim.toml");
            Assert.Contains("\n[runtime.handlers.runc]\n# path = \"/usr/bin/runc\"\nroot = \"\"\n\n[runtime.handlers.crun]\npath = \"/usr/bin/crun\"\n", shippedConfig);
            Assert.Contains("ExecStart=/usr/bin/crishim\n", File.ReadAllText("/lib/systemd/system/crishim.service"));
            Assert.Contains("Type=notify\n", File.ReadAllText("/lib/systemd/system/crishim.service"));

            // dpkg's own list: exactly our files (and their directories), each with its mode.
            var listed = HostCommand.Output("dpkg-query", "-L", Package).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(p => File.Exists(p)).ToHashSet();
            Assert.Equal(PackageFiles.Keys.Order(), listed.Where(p => !Directory.Exists(p)).Order());
            foreach (var (path, mode) in PackageFiles)
            {
                Assert.True((int)File.GetUnixFileMode(path) == mode, $"{path} is {Convert.ToString((int)File.GetUnixFileMode(path), 8)}, not {Convert.ToString(mode, 8)}");
            }
            foreach (string path in PostinstFiles)
            {
                Assert.True(File.Exists(path), $"postinst did not add {path}");
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(path));
            }
            Assert.Equal(File.ReadAllText(Path.Combine(Daemon.RepositoryRoot(), "packaging", "10-crishim-bridge.conflist")), File.ReadAllText(Conflist));
            Assert.Contains("runtime-endpoint: unix:///run/crishim/crishim.sock", File.ReadAllText(CrictlConfig));

            // Remove: the files go, the conffile and what postinst added stay until purge.
            HostCommand.Output("dpkg", "-r", Package);
            Assert.All(PackageFiles.Keys.Where(p => p != "/etc/crishim/crishim.toml"), p => Assert.False(File.Exists(p), $"{p} left after dpkg -r"));
            Assert.True(File.Exists("/etc/crishim/crishim.toml"), "dpkg -r removed the conffile");
            Assert.All(PostinstFiles, p => Assert.True(File.Exists(p), $"dpkg -r removed {p}"));

            HostCommand.Output("dpkg", "-P", Package);
            Assert.All(Footprint, p => Assert.False(File.Exists(p) || Directory.Exists(p), $"{p} left after dpkg -P"));
            Assert.NotEqual(0, (await HostCommand.RunAsync("dpkg-query", ["-W", Package])).ExitCode);
        }
        finally
        {
            await HostCommand.RunAsync("dpkg", ["-P", Package]);
            Directory.Delete(outDir, recursive: true);
        }
    }

    /// <summary>Skipped (not passed) without the AOT binary or on a host that already has CriShim's files or a CNI/crictl config.</summary>
    private sealed class DebianPackageFactAttribute : FactAttribute
    {
        public DebianPackageFactAttribute()
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CRISHIM_BINARY")))
            {
                Skip = "packages the Native AOT binary: set CRISHIM_BINARY (make integration-test does)";
            }
            else if (File.Exists($"/var/lib/dpkg/info/{Package}.list"))
            {
                Skip = $"a {Package} package is already installed on this host";
            }
            else if (Footprint.FirstOrDefault(p => File.Exists(p) || Directory.Exists(p)) is { } present)
            {
                Skip = $"{present} exists: this test needs a host without CriShim's files and without CNI or crictl config";
            }
        }
    }
}
