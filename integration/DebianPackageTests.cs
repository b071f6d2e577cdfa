using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// `make deb`'s package installed into a throwaway root (dpkg --root, its maintainer scripts run with DPKG_ROOT
/// set), so the host's own /etc/cni or crictl config neither skips nor sways it: dpkg -i, the installed binary,
/// every file and its mode, then dpkg -r and dpkg -P leave the root as it was.
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

    private const string Conflist = "/etc/cni/net.d/10-crishim-bridge.conflist";
    private const string CrictlConfig = "/etc/crictl.yaml";

    /// <summary>What postinst adds in a root without CNI config or crictl config.</summary>
    private static readonly string[] PostinstFiles = [Conflist, CrictlConfig];

    /// <summary>Everything the package or its postinst may create; all absent before and after the test.</summary>
    private static readonly string[] Footprint = [.. PackageFiles.Keys, .. PostinstFiles, "/etc/crishim", "/usr/share/crishim", "/etc/cni"];

    [DebianPackageFact]
    public async Task InstallsRunsAndRemovesCleanly()
    {
        string binary = Environment.GetEnvironmentVariable("CRISHIM_BINARY")!;
        string outDir = Directory.CreateTempSubdirectory("crishim-deb-").FullName;
        string root = Directory.CreateTempSubdirectory("crishim-deb-root-").FullName;
        string InRoot(string path) => root + path;
        // An empty dpkg database in the root; the scripts run on the host (there is no shell in the root) with DPKG_ROOT
        // set, and the dependencies are the host's business, not this root's.
        Directory.CreateDirectory(InRoot("/var/lib/dpkg/info"));
        Directory.CreateDirectory(InRoot("/var/lib/dpkg/updates"));
        Directory.CreateDirectory(InRoot("/var/log"));
        File.WriteAllText(InRoot("/var/lib/dpkg/status"), "");
        string Dpkg(params string[] arguments) => HostCommand.Output("dpkg",
            [$"--root={root}", $"--log={InRoot("/var/log/dpkg.log")}", "--force-script-chrootless", "--force-depends", .. arguments]);
        try
        {
            string deb = HostCommand.Output("bash", Path.Combine(Daemon.RepositoryRoot(), "scripts", "build-deb.sh"), binary, outDir).Trim();
            string control = HostCommand.Output("dpkg-deb", "--field", deb);
            Assert.Contains("Depends: runc | crun, conmon, catatonit, containernetworking-plugins", control);
            Assert.Contains("Recommends: criu (>= 3.16)", control);
            Assert.Equal("/etc/crishim/crishim.toml\n", HostCommand.Output("dpkg-deb", "--info", deb, "conffiles"));

            Dpkg("-i", deb);
            Assert.Equal(HostCommand.Output(binary, "--version"), HostCommand.Output(InRoot("/usr/bin/crishim"), "--version"));
            // Host-independent: the runc handler names no path, so each node picks its own runc at start-up.
            Assert.Contains("\n[runtime.handlers.runc]\n# path = \"/usr/bin/runc\"\nroot = \"\"\n\n[runtime.handlers.crun]\npath = \"/usr/bin/crun\"\n",
                File.ReadAllText(InRoot("/etc/crishim/crishim.toml")));
            Assert.Contains("ExecStart=/usr/bin/crishim\n", File.ReadAllText(InRoot("/lib/systemd/system/crishim.service")));
            Assert.Contains("Type=notify\n", File.ReadAllText(InRoot("/lib/systemd/system/crishim.service")));

            // dpkg's own list: exactly our files (and their directories), each with its mode.
            var listed = HostCommand.Output("dpkg-query", $"--root={root}", "-L", Package).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(p => File.Exists(InRoot(p))).ToHashSet();
            Assert.Equal(PackageFiles.Keys.Order(), listed.Where(p => !Directory.Exists(InRoot(p))).Order());
            foreach (var (path, mode) in PackageFiles)
            {
                int actual = (int)File.GetUnixFileMode(InRoot(path));
                Assert.True(actual == mode, $"{path} is {Convert.ToString(actual, 8)}, not {Convert.ToString(mode, 8)}");
            }
            foreach (string path in PostinstFiles)
            {
                Assert.True(File.Exists(InRoot(path)), $"postinst did not add {path}");
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(InRoot(path)));
            }
            Assert.Equal(File.ReadAllText(Path.Combine(Daemon.RepositoryRoot(), "packaging", "10-crishim-bridge.conflist")), File.ReadAllText(InRoot(Conflist)));
            Assert.Contains("runtime-endpoint: unix:///run/crishim/crishim.sock", File.ReadAllText(InRoot(CrictlConfig)));

            // Remove: the files go, the conffile and what postinst added stay until purge.
            Dpkg("-r", Package);
            Assert.All(PackageFiles.Keys.Where(p => p != "/etc/crishim/crishim.toml"), p => Assert.False(File.Exists(InRoot(p)), $"{p} left after dpkg -r"));
            Assert.True(File.Exists(InRoot("/etc/crishim/crishim.toml")), "dpkg -r removed the conffile");
            Assert.All(PostinstFiles, p => Assert.True(File.Exists(InRoot(p)), $"dpkg -r removed {p}"));

            Dpkg("-P", Package);
            Assert.All(Footprint, p => Assert.False(File.Exists(InRoot(p)) || Directory.Exists(InRoot(p)), $"{p} left after dpkg -P"));
            Assert.NotEqual(0, (await HostCommand.RunAsync("dpkg-query", [$"--root={root}", "-W", Package])).ExitCode);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    /// <summary>Skipped (not passed) without the AOT binary.</summary>
    private sealed class DebianPackageFactAttribute : FactAttribute
    {
        public DebianPackageFactAttribute()
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CRISHIM_BINARY")))
            {
                Skip = "packages the Native AOT binary: set CRISHIM_BINARY (make integration-test does)";
            }
        }
    }
}
