using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;

namespace CriShim.Runtime.Tests;

public class ExternalCommandTests
{
    [Fact]
    public async Task FailureCarriesToolArgumentsAndStderr()
    {
        var sh = new ExternalCommand("shell", "/bin/sh");
        var e = await Assert.ThrowsAsync<ExternalCommandException>(() =>
            sh.RunAsync(["-c", "echo boom >&2; exit 3"], TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(3, e.ExitCode);
        Assert.Contains("boom", e.Message);
        Assert.StartsWith("shell -c", e.Message);
    }

    [Fact]
    public async Task TimeoutKillsTheProcess()
    {
        var sh = new ExternalCommand("shell", "/bin/sh");
        var started = DateTime.UtcNow;
        await Assert.ThrowsAsync<ExternalCommandTimeoutException>(() =>
            sh.RunAsync(["-c", "sleep 30"], TimeSpan.FromMilliseconds(300), CancellationToken.None));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task CallerCancellationIsNotReportedAsTimeout()
    {
        var sh = new ExternalCommand("shell", "/bin/sh");
        using var cts = new CancellationTokenSource(200);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            sh.RunAsync(["-c", "sleep 30"], TimeSpan.FromSeconds(30), cts.Token));
    }

    [Fact]
    public async Task CapturedOutputKeepsTheFirstBytesRawAndReadsTheRestAway()
    {
        var sh = new ExternalCommand("shell", "/bin/sh");
        // 3 MB of stdout after two bytes that are not UTF-8; stderr stays under the limit.
        var output = await sh.RunCapturedAsync(["-c", "printf '\\377\\376'; head -c 3000000 /dev/zero; printf 'e\\377' >&2"],
            TimeSpan.FromSeconds(30), 1024 * 1024, CancellationToken.None);
        Assert.Equal(0, output.ExitCode);
        Assert.Equal(1024 * 1024, output.StandardOutput.Length);
        Assert.Equal(3000002, output.StandardOutput.TotalLength);
        Assert.True(output.StandardOutput.Truncated);
        Assert.Equal([0xff, 0xfe, 0, 0], output.StandardOutput.Bytes[..4].ToArray());
        Assert.Equal(new byte[] { (byte)'e', 0xff }, output.StandardError.Bytes.ToArray());
        Assert.False(output.StandardError.Truncated);
    }

    [Fact]
    public async Task TextOutputOverTheLimitIsAnErrorSayingItWasTruncated()
    {
        var sh = new ExternalCommand("shell", "/bin/sh");
        var e = await Assert.ThrowsAsync<ExternalCommandException>(() =>
            sh.RunAsync(["-c", $"head -c {ExternalCommand.TextOutputLimit + 1} /dev/zero"], TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("stdout", e.Message);
        // Exactly at the limit is still whole output.
        var whole = await sh.RunAsync(["-c", $"head -c {ExternalCommand.TextOutputLimit} /dev/zero"], TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(ExternalCommand.TextOutputLimit, whole.StandardOutput.Length);
    }

    [Fact]
    public async Task MissingBinaryIsAnErrorNamingThePath()
    {
        var missing = new ExternalCommand("ghost", "/no/such/binary");
        var e = await Assert.ThrowsAsync<ExternalCommandException>(() =>
            missing.RunAsync([], TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.Contains("/no/such/binary", e.Message);
    }
}

public class CriuTests
{
    [Theory]
    [InlineData("Version: 4.1.1\n", "4.1.1", 40101)]
    [InlineData("Version: 3.16\nGitID: v3.16\n", "3.16", 31600)]
    [InlineData("Version: 3.17.1\n", "3.17.1", 31701)]
    public void ParsesVersions(string output, string text, int number)
    {
        var parsed = Criu.ParseVersion(output);
        Assert.NotNull(parsed);
        Assert.Equal(text, parsed.Value.Text);
        Assert.Equal(number, parsed.Value.Number);
    }

    [Fact]
    public async Task ProbeOfAMissingBinarySaysSo()
    {
        var status = await new Criu("/no/such/criu").ProbeAsync(CancellationToken.None);
        Assert.False(status.Usable);
        Assert.Contains("not found", status.Detail);
    }

    [Fact]
    public async Task ProbeRefusesTooOldVersions()
    {
        string fake = Path.Combine(Path.GetTempPath(), $"fake-criu-{Guid.NewGuid():N}");
        File.WriteAllText(fake, "#!/bin/sh\necho 'Version: 3.15'\n");
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var status = await new Criu(fake).ProbeAsync(CancellationToken.None);
        File.Delete(fake);
        Assert.False(status.Usable);
        Assert.Contains("too old", status.Detail);
    }
}

public class OciRuntimeTests
{
    [Theory]
    [InlineData("runc", "/usr/bin/runc")]
    [InlineData("crun", "/usr/bin/crun")]
    public async Task QueriesTheRealRuntime(string handler, string path)
    {
        string root = Directory.CreateTempSubdirectory("crishim-oci").FullName;
        var runtime = new OciRuntime(handler, path, root);
        var (version, canCheckpoint) = await runtime.VersionAsync(CancellationToken.None);
        Assert.Contains(handler, version);
        // Debian 12's crun 1.8.1 is built without libcriu; runc always can.
        Assert.Equal(handler == "runc", canCheckpoint);
        Assert.Empty(await runtime.ListAsync(CancellationToken.None));
        await Assert.ThrowsAsync<OciContainerNotFoundException>(() => runtime.StateAsync("absent", CancellationToken.None));
        Directory.Delete(root, true);
    }
}
