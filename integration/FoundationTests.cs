using System.Text.Json;

namespace CriShim.Integration;

public class FoundationTests
{
    [Fact]
    public async Task VersionNamesTheRuntime()
    {
        await using var daemon = await Daemon.StartAsync();
        var version = await daemon.Runtime.VersionAsync(new VersionRequest { Version = "v1" });
        Assert.Equal("crishim", version.RuntimeName);
        Assert.Equal("v1", version.RuntimeApiVersion);
        Assert.Matches(@"^\d+\.\d+\.\d+", version.RuntimeVersion);
    }

    [Fact]
    public async Task StatusReportsConditionsAndVerboseConfig()
    {
        await using var daemon = await Daemon.StartAsync();
        var status = await daemon.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        var runtimeReady = Assert.Single(status.Status.Conditions, c => c.Type == "RuntimeReady");
        Assert.True(runtimeReady.Status, runtimeReady.Message);
        var networkReady = Assert.Single(status.Status.Conditions, c => c.Type == "NetworkReady");
        // The harness gives every daemon its own bridge network (TestNetwork).
        Assert.True(networkReady.Status, networkReady.Message);
        Assert.Contains(status.RuntimeHandlers, h => h.Name == "runc");
        Assert.Contains(status.RuntimeHandlers, h => h.Name == "crun");

        using var config = JsonDocument.Parse(status.Info["config"]);
        Assert.Equal(daemon.SocketPath, config.RootElement.GetProperty("server").GetProperty("socket").GetString());
        using var criu = JsonDocument.Parse(status.Info["criu"]);
        Assert.True(criu.RootElement.TryGetProperty("usable", out _));

        var terse = await daemon.Runtime.StatusAsync(new StatusRequest());
        Assert.Empty(terse.Info);
    }

    [Fact]
    public async Task StatusReportsTheInstalledCriu()
    {
        await using var daemon = await Daemon.StartAsync();
        var status = await daemon.Runtime.StatusAsync(new StatusRequest { Verbose = true });
        using var criu = JsonDocument.Parse(status.Info["criu"]);
        Assert.True(criu.RootElement.GetProperty("usable").GetBoolean(), status.Info["criu"]);
        Assert.True(criu.RootElement.GetProperty("versionNumber").GetInt32() >= 31600);
    }

    [Theory]
    [InlineData("cgroupfs", CgroupDriver.Cgroupfs)]
    [InlineData("systemd", CgroupDriver.Systemd)]
    public async Task RuntimeConfigReportsTheCgroupDriver(string driver, CgroupDriver expected)
    {
        await using var daemon = await Daemon.StartAsync(configToml: $"[runtime]\ncgroup_driver = \"{driver}\"\n");
        var config = await daemon.Runtime.RuntimeConfigAsync(new RuntimeConfigRequest());
        Assert.Equal(expected, config.Linux.CgroupDriver);
    }

    [Fact]
    public async Task PodCidrIsRecordedAndSurvivesARestart()
    {
        var dirs = DaemonDirs.Create();
        await using (var first = await Daemon.StartAsync(dirs))
        {
            await first.Runtime.UpdateRuntimeConfigAsync(new UpdateRuntimeConfigRequest
            {
                RuntimeConfig = new Runtime.V1.RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = "10.244.1.0/24" } },
            });
            var bad = await Assert.ThrowsAsync<RpcException>(() => first.Runtime.UpdateRuntimeConfigAsync(new UpdateRuntimeConfigRequest
            {
                RuntimeConfig = new Runtime.V1.RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = "banana" } },
            }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
            await first.StopAsync();
        }
        await using (var second = await Daemon.StartAsync(dirs))
        {
            var status = await second.Runtime.StatusAsync(new StatusRequest { Verbose = true });
            Assert.Equal("\"10.244.1.0/24\"", status.Info["podCidr"]);
        }
        dirs.Delete();
    }

    [Fact]
    public async Task SocketAndItsDirectoryAreRootOnly()
    {
        await using var daemon = await Daemon.StartAsync();
        var dirs = daemon.Dirs;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(daemon.SocketPath));
        // The socket's group may reach it through its directory (search, not list); no one else.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute,
            File.GetUnixFileMode(dirs.RunRoot));
    }

    [Fact]
    public async Task TwoDaemonsCannotShareASocket()
    {
        await using var first = await Daemon.StartAsync();
        var secondDirs = DaemonDirs.Create();
        var second = Daemon.Launch(secondDirs, null, "--socket", first.SocketPath);
        int exitCode = await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, exitCode);
        Assert.Contains(first.SocketPath, second.Output);
        Assert.Contains("already serving", second.Output);
        // The first daemon is untouched and still answers.
        await first.Runtime.VersionAsync(new VersionRequest());
        secondDirs.Delete();
    }

    [Fact]
    public async Task AStaleSocketIsReplaced()
    {
        var dirs = DaemonDirs.Create();
        Directory.CreateDirectory(dirs.RunRoot);
        // A process that binds the socket and dies leaves the file behind, as a crashed daemon does.
        var binder = System.Diagnostics.Process.Start("python3",
            ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", dirs.Socket])!;
        await binder.WaitForExitAsync();
        Assert.True(File.Exists(dirs.Socket));
        await using (var daemon = await Daemon.StartAsync(dirs))
        {
            var version = await daemon.Runtime.VersionAsync(new VersionRequest());
            Assert.Equal("crishim", version.RuntimeName);
        }
        dirs.Delete();
    }

    [Theory]
    [InlineData("[server]\nlisten = \"/x\"\n", "unknown key 'server.listen'")]
    [InlineData("[checkpoint]\nenabled = \"yes\"\n", "checkpoint.enabled: expected a boolean")]
    public async Task ABadConfigFileStopsStartUpNamingTheKey(string toml, string expected)
    {
        var dirs = DaemonDirs.Create();
        var daemon = Daemon.Launch(dirs, toml);
        int exitCode = await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, exitCode);
        Assert.Contains(expected, daemon.Output);
        Assert.Contains(dirs.ConfigFile, daemon.Output);
        Assert.False(File.Exists(dirs.Socket));
        dirs.Delete();
    }

    [Fact]
    public async Task SigtermShutsDownCleanly()
    {
        var dirs = DaemonDirs.Create();
        var daemon = await Daemon.StartAsync(dirs);
        Assert.Equal(0, await daemon.StopAsync());
        Assert.False(File.Exists(dirs.Socket));
        dirs.Delete();
    }
}
