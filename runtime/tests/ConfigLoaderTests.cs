using CriShim.Runtime.Config;

namespace CriShim.Runtime.Tests;

public class ConfigLoaderTests
{
    [Fact]
    public void DefaultFileParsesToTheDefaults()
    {
        var parsed = ConfigLoader.Parse(DefaultConfigFile.Text);
        Assert.Equal(ConfigJson.Serialize(new CriShimConfig()), ConfigJson.Serialize(parsed));
    }

    [Fact]
    public void TheDefaultFileNamesNoHostsRuncAndLoadingItPicksThisHostsOne()
    {
        // The .deb ships this text, printed on the build host: a private runc there must not end up in it.
        Assert.DoesNotContain($"path = \"{RuntimeHandlerConfig.PrivateRunc}\"", DefaultConfigFile.Text);
        Assert.Contains("[runtime.handlers.runc]\n# path = \"/usr/bin/runc\"\nroot = \"\"\n", DefaultConfigFile.Text);
        Assert.Equal(RuntimeHandlerConfig.DefaultRuncPath, ConfigLoader.Parse(DefaultConfigFile.Text).Runtime.Handlers["runc"].Path);
    }

    [Fact]
    public void FileValuesOverrideDefaults()
    {
        var config = ConfigLoader.Parse("""
            [server]
            socket = "/tmp/x.sock"
            log_level = "debug"
            [runtime]
            default_handler = "crun"
            cgroup_driver = "systemd"
            [runtime.handlers.kata]
            path = "/usr/bin/kata-runtime"
            [registries]
            insecure = ["registry.local:5000"]
            [registries.mirrors]
            "docker.io" = ["http://127.0.0.1:5000"]
            """);
        Assert.Equal("/tmp/x.sock", config.Server.Socket);
        Assert.Equal("debug", config.Server.LogLevel);
        Assert.Equal("crun", config.Runtime.DefaultHandler);
        Assert.Equal("systemd", config.Runtime.CgroupDriver);
        Assert.Equal(["crun", "kata", "runc"], config.Runtime.Handlers.Keys.Order());
        Assert.Equal(RuntimeHandlerConfig.DefaultRuncPath, config.Runtime.Handlers["runc"].Path);
        Assert.Equal(["registry.local:5000"], config.Registries.Insecure);
        Assert.Equal(["http://127.0.0.1:5000"], config.Registries.Mirrors["docker.io"]);
    }

    [Theory]
    [InlineData("[server]\nsokcet = \"/x\"", "unknown key 'server.sokcet'")]
    [InlineData("colour = 1", "unknown key 'colour'")]
    [InlineData("[runtime.handlers.runc]\npth = \"/x\"", "unknown key 'runtime.handlers.runc.pth'")]
    [InlineData("[server]\nlog_level = \"loud\"", "server.log_level: \"loud\" is not one of")]
    [InlineData("[server]\nsocket = 5", "server.socket: expected a string, got the integer 5")]
    [InlineData("[state]\nroot = \"relative/dir\"", "state.root: \"relative/dir\" is not an absolute path")]
    [InlineData("[checkpoint]\ndefault_timeout_seconds = 0", "checkpoint.default_timeout_seconds: 0 is out of range")]
    [InlineData("[runtime]\ncgroup_driver = \"cgroupv3\"", "runtime.cgroup_driver")]
    [InlineData("[runtime]\ndefault_handler = \"kata\"", "runtime.default_handler: \"kata\" is not a configured handler")]
    [InlineData("[cni]\nbin_dirs = [\"/a\", 3]", "cni.bin_dirs[1]: expected a string")]
    [InlineData("[streaming]\naddress = \"not-an-ip\"", "streaming.address")]
    [InlineData("[metrics]\naddress = \"localhost:9090\"", "metrics.address: \"localhost:9090\" is not an IP address with a port")]
    [InlineData("[metrics]\naddress = \"127.0.0.1\"", "metrics.address")]
    [InlineData("[metrics]\naddress = \"127.0.0.1:0\"", "metrics.address")]
    [InlineData("[cdi]\nspec_dirs = [\"etc/cdi\"]", "cdi.spec_dirs: \"etc/cdi\" is not an absolute path")]
    [InlineData("[checkpoint]\nkeep_per_container = -1", "checkpoint.keep_per_container: -1 is out of range")]
    [InlineData("[server\nsocket = 1", "not valid TOML")]
    public void BadFilesNameTheKey(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(toml));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingDefaultFileMeansDefaultsButMissingNamedFileIsAnError()
    {
        Assert.Equal("/run/crishim/crishim.sock", ConfigLoader.LoadFile("/no/such/crishim.toml", explicitlyNamed: false).Server.Socket);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile("/no/such/crishim.toml", explicitlyNamed: true));
        Assert.Contains("/no/such/crishim.toml does not exist", e.Message);
    }
}

public class CommandLineTests
{
    [Fact]
    public void FlagsOverrideTheFile()
    {
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "[server]\nsocket = \"/from/file.sock\"\nlog_level = \"error\"\n");
        var config = CommandLine.Parse(["--config", file, "--socket=/from/flag.sock", "--streaming-port", "1234"]).LoadConfig();
        Assert.Equal("/from/flag.sock", config.Server.Socket);
        Assert.Equal("error", config.Server.LogLevel);
        Assert.Equal(1234, config.Streaming.Port);
        File.Delete(file);
    }

    [Theory]
    [InlineData(new[] { "--bogus", "1" }, "unknown flag --bogus")]
    [InlineData(new[] { "--bogus" }, "unknown flag --bogus")]
    [InlineData(new[] { "-v" }, "unexpected argument \"-v\"")]
    [InlineData(new[] { "--socket" }, "--socket needs a value")]
    [InlineData(new[] { "--socket", "rel.sock" }, "--socket: \"rel.sock\" is not an absolute path")]
    [InlineData(new[] { "--streaming-port", "70000" }, "--streaming-port")]
    public void BadFlagsAreNamed(string[] args, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => CommandLine.Parse(args).LoadConfig());
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void VerbsAreRecognised()
    {
        Assert.Equal("config-default", CommandLine.Parse(["config", "default"]).Verb);
        Assert.Equal("version", CommandLine.Parse(["version"]).Verb);
        Assert.Equal("run", CommandLine.Parse([]).Verb);
    }

    [Theory]
    [InlineData("version", new[] { "--version" })]
    [InlineData("version", new[] { "version" })]
    [InlineData("version", new[] { "--socket", "/x.sock", "--version" })]
    [InlineData("help", new[] { "--help" })]
    [InlineData("help", new[] { "-h" })]
    [InlineData("help", new[] { "help" })]
    [InlineData("help", new[] { "--config", "/missing.toml", "-h" })]
    public void VersionAndHelpNeedNoValueAndNoConfigFile(string verb, string[] args)
    {
        Assert.Equal(verb, CommandLine.Parse(args).Verb);
    }

    [Fact]
    public void UsageNamesEveryFlagAndVerb()
    {
        foreach (string word in new[] { "--version", "--help", "-h", "config default", "--config", "--socket", "--cni-conf-dir", "--streaming-port" })
        {
            Assert.Contains(word, CommandLine.Usage);
        }
    }
}
