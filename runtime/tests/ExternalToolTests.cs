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

    [Theory]
    [InlineData(40101, "6.18.44-fc-v1272", true)]
    [InlineData(40101, "6.16.0", true)]
    [InlineData(31701, "7.0.1-arch1", true)]
    [InlineData(40101, "6.15.11", false)]
    [InlineData(40101, "6.1.0-27-amd64", false)]
    [InlineData(40200, "6.18.44", false)]
    [InlineData(40201, "6.16.3", false)]
    [InlineData(50000, "7.2.0", false)]
    [InlineData(40101, "not-a-release", false)]
    public void CriuBefore42IsKnownToFailOnLinux616AndLater(int criuVersion, string kernelRelease, bool fails)
    {
        string? problem = Criu.KnownKernelProblem(criuVersion, kernelRelease);
        Assert.Equal(fails, problem is not null);
        if (problem is null) return;
        Assert.Contains("criu#2705", problem);
        Assert.Contains(kernelRelease, problem);
        Assert.Contains($"CRIU {criuVersion / 10000}.{criuVersion / 100 % 100}.{criuVersion % 100} ", problem);
    }

    /// <summary>The shape of a real dump.log: CRIU 4.1.1 dumping a process holding a TCP socket on Linux 6.18 (criu#2705).</summary>
    private const string FailedDumpLog = """
        (00.000000) CRIU run id = c54a0ebf-26c9-495b-9175-62b25a261581
        (00.000077) Version: 4.1.1 (gitid 0)
        (00.000107) Running on vm Linux 6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0 x86_64
        (00.176395) Dumping processes (pid: 11908 comm: busybox)
        (00.176452) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
        (00.176512) Running pre-dump scripts
        (00.211600) 11908 fdinfo 3: pos:                0 flags:                2/0x1
        (00.211611) sockets: Searching for socket 0xa5b6 family 10
        (00.211638) Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported
        (00.211642) Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported
        (00.211657) sockets: No filter for socket
        (00.211667) ----------------------------------------
        (00.211682) Error (criu/cr-dump.c:1681): Dump files (pid: 11908) failed with -1
        (00.211692) Waiting for 11908 to trap
        (00.212069) 11908 was trapped
        (00.212119) 11908 was stopped
        (00.212731) net: Unlock network
        (00.212738) Unfreezing tasks into 1
        (00.212740) 	Unseizing 11908 into 1

        """;

    [Fact]
    public void AFailedDumpIsQuotedByItsFirstErrorLinesThenItsTail()
    {
        string excerpt = Criu.DumpLogExcerpt(FailedDumpLog.Split('\n'), errorLines: 3, tailLines: 3);
        Assert.Equal("""
            (00.176452) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
            …
            (00.211638) Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported
            (00.211642) Error (criu/sockets.c:628): sockets: Can't get 1:34 opt: Operation not supported
            …
            (00.212731) net: Unlock network
            (00.212738) Unfreezing tasks into 1
            (00.212740) 	Unseizing 11908 into 1
            """, excerpt);
    }

    [Fact]
    public void ADumpLogEndingInItsErrorsIsNotQuotedTwice()
    {
        string[] lines = ["(00.000001) Dumping processes", "(00.000002) pie: 12: Error (criu/pie/parasite.c:10): gone", "(00.000003) Error (criu/cr-dump.c:2111): Dumping FAILED."];
        Assert.Equal(string.Join('\n', lines[1..]), Criu.DumpLogExcerpt(lines));
    }

    [Fact]
    public void ALogWithoutErrorsIsQuotedByItsTailAndLongLinesAreCut()
    {
        string[] lines = [.. Enumerable.Range(1, 20).Select(i => $"(00.{i:000000}) line {i}"), new string('x', 1000)];
        string excerpt = Criu.DumpLogExcerpt(lines, tailLines: 2);
        Assert.Equal($"(00.000020) line 20\n{new string('x', 400)}…", excerpt);
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
        // runc always links CRIU in; whether crun can depends on how the distribution built it.
        if (handler == "runc") Assert.True(canCheckpoint);
        await runtime.DeleteAsync("absent", CancellationToken.None);
        Directory.Delete(root, true);
    }
}
