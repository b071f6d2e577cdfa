using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>The binary's own answers to --version, --help and a bad flag (exit codes and streams).</summary>
public class CommandLineTests
{
    [Theory]
    [InlineData("--version")]
    [InlineData("version")]
    public async Task VersionPrintsTheRuntimeAndItsVersion(string arg)
    {
        var result = await HostCommand.RunAsync(Daemon.Binary, [arg]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(@"^crishim \d+\.\d+\.\d+\S* \(CRI v1\)\n$", result.Output);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public async Task HelpPrintsTheUsage(string arg)
    {
        var result = await HostCommand.RunAsync(Daemon.Binary, [arg]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.StartsWith("usage: crishim", result.Output);
        Assert.Contains("--cni-conf-dir", result.Output);
    }

    [Theory]
    [InlineData("--bogus", "unknown flag --bogus")]
    [InlineData("-x", "unexpected argument \"-x\"")]
    [InlineData("--socket", "--socket needs a value")]
    public async Task ABadFlagPrintsTheUsageAndExits2(string arg, string message)
    {
        var result = await HostCommand.RunAsync(Daemon.Binary, [arg]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"crishim: {message}", result.Error);
        Assert.Contains("usage: crishim", result.Error);
        Assert.Empty(result.Output);
    }
}
