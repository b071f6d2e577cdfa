using CriShim.Runtime.Restore;
using CriShim.Runtime.Server;

namespace CriShim.Runtime.Tests.Restore;

/// <summary>restore.log text shaped as CRIU 4.2 writes it (its messages from the binary's strings).</summary>
public class CriuRestoreFailureTests
{
    private static string[] Log(params string[] errors) =>
    [
        "(00.000000) Version: 4.2.1 (gitid 0)",
        "(00.000110) Running on node-1 Linux 6.18.0 #1 SMP x86_64",
        "(00.412210) rlimit: RLIMIT_NOFILE unlimited for self",
        "(00.417275) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
        .. errors,
        "(01.710095) Error (criu/cr-restore.c:2331): Restoring FAILED.",
    ];

    [Theory]
    [InlineData("(00.003121) Error (criu/arch/x86/cpu.c:347): cpu: CPU xfeatures has unsupported bits (0x60000)", "cpu: CPU xfeatures has unsupported bits (0x60000)")]
    [InlineData("(00.003121) Error (criu/arch/x86/cpu.c:402): cpu: CPU instruction capabilities do not match run time", "cpu: CPU instruction capabilities do not match run time")]
    [InlineData("(00.003121) Error (criu/arch/x86/cpu.c:290): cpu: FPU feature required by image is not supported on host (fpu:1 fxsr:1 osxsave:1 xsaves:0)", "cpu: FPU feature required by image is not supported on host (fpu:1 fxsr:1 osxsave:1 xsaves:0)")]
    [InlineData("(00.000342) Error (criu/image.c:312): Not supported images version 3", "Not supported images version 3")]
    [InlineData("(00.000342) Error (criu/image.c:297): Head magic doesn't match for /var/lib/crishim/containers/c/checkpoint/core-1.img", "Head magic doesn't match for /var/lib/crishim/containers/c/checkpoint/core-1.img")]
    [InlineData("(00.052112) Error (criu/cr-restore.c:1101): Core march mismatch 3", "Core march mismatch 3")]
    [InlineData("(00.061003) Error (criu/arch/x86/crtools.c:488): x86: FPU xsave area present, but host cpu doesn't support it", "x86: FPU xsave area present, but host cpu doesn't support it")]
    public void ImagesThisNodeCannotRestoreAreAFailedPreconditionWithCriusLine(string line, string reason)
    {
        Assert.Equal(reason, CriuImageCompatibility.IncompatibilityIn(Log(line)));
        var e = Assert.IsType<WrongStateException>(CriuRestoreFailure.Of("c1", "/a.tar", Log(line), "exit status 1"));
        Assert.Contains("CRIU could not restore container c1 from /a.tar; the container was removed", e.Message);
        Assert.Contains($"this node cannot restore its images: {reason}", e.Message);
    }

    [Theory]
    [InlineData("(00.418001) Error (criu/files-reg.c:2161): Can't open file tmp/data on restore: No such file or directory")]
    [InlineData("(00.418001) Error (criu/arch/x86/cpu.c:118): cpu: cpuinfo: Can't allocate 4096 bytes")]
    [InlineData("(00.418001) Warn  (criu/arch/x86/cpu.c:347): cpu: CPU xfeatures has unsupported bits (0x60000)")]
    [InlineData("(01.399481)      6: Error (criu/net.c:2942): net: Unable to find an external netns: extRootNetNS")]
    public void AnyOtherFailureIsInternalWithTheLogsErrorsAndTail(string line)
    {
        Assert.Null(CriuImageCompatibility.IncompatibilityIn(Log(line)));
        var e = Assert.IsType<InvalidOperationException>(CriuRestoreFailure.Of("c1", "/a.tar", Log(line), "exit status 1"));
        Assert.Contains("rlimit: Can't setup RLIMIT_NOFILE", e.Message);
        Assert.Contains("Restoring FAILED.", e.Message);
        if (line.Contains("Error (")) Assert.Contains(line, e.Message);
    }

    [Fact]
    public void TheErrorsOfTheTasksARestoreForksAreRead()
    {
        var log = Log("(00.051002)      1: Error (criu/cr-restore.c:1101): Core march mismatch 3");
        Assert.Equal("Core march mismatch 3", CriuImageCompatibility.IncompatibilityIn(log));
    }

    [Fact]
    public void ASocketWhoseAddressThisPodLacksIsAFailedPreconditionSayingWhatToDo()
    {
        var log = Log("(01.702231)      6: Error (criu/sk-inet.c:1002): inet: Can't bind inet socket (id 25): Cannot assign requested address");
        var e = Assert.IsType<WrongStateException>(CriuRestoreFailure.Of("c1", "/a.tar", log, "exit status 1"));
        Assert.Contains("inet: Can't bind inet socket (id 25): Cannot assign requested address", e.Message);
        Assert.Contains("restore it into a pod sandbox that has that IP, or checkpoint the container without tcp_established", e.Message);
    }

    [Fact]
    public void WithoutALogTheRuntimesMessageIsQuoted()
    {
        var e = Assert.IsType<InvalidOperationException>(CriuRestoreFailure.Of("c1", "/a.tar", restoreLog: (IEnumerable<string>?)null, "conmon exited 1"));
        Assert.EndsWith("the container was removed: conmon exited 1", e.Message);
    }
}
