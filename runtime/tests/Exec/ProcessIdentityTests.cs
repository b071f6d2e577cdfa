using System.Diagnostics;
using System.Text.Json;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Pods;

namespace CriShim.Runtime.Tests.Exec;

public class ProcessIdentityTests
{
    // A real stat line (fields 3..52) behind a command name that holds spaces and parentheses.
    private const string Fields = "S 1 9819 4090 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 34313 3133440 388 18446744073709551615 1 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 1 0";

    [Fact]
    public void StatIsParsedAfterTheLastParenthesis()
    {
        Assert.Equal(new ProcessStat('S', 34313), ProcessStat.Parse($"9823 (cat) {Fields}"));
        Assert.Equal(new ProcessStat('S', 34313), ProcessStat.Parse($"9823 (a) Z 1 (b)) {Fields}"));
        Assert.Equal('Z', ProcessStat.Parse($"9823 (x) Z{Fields[1..]}")!.State);
    }

    [Theory]
    [InlineData("")]
    [InlineData("9823 (cat")]
    [InlineData("9823 (cat) S 1 2 3")]
    [InlineData("9823 (cat) S 1 9819 4090 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 notanumber 1")]
    public void AMalformedStatIsNoProcess(string stat) => Assert.Null(ProcessStat.Parse(stat));

    [Fact]
    public void OnlyTheSameStartTimeInTheSameBootIsTheSameRunningProcess()
    {
        var identity = new ProcessIdentity(4242, 34313, "boot-a");
        Assert.True(identity.IsSameProcess("boot-a", new ProcessStat('S', 34313)));
        Assert.True(identity.IsSameProcess("boot-a", new ProcessStat('R', 34313)));
        // A reused pid: another process started later.
        Assert.False(identity.IsSameProcess("boot-a", new ProcessStat('S', 99999)));
        // After a reboot every recorded pid is dead, even one whose start tick happens to match.
        Assert.False(identity.IsSameProcess("boot-b", new ProcessStat('S', 34313)));
        // A zombie has ended; only its exit status waits to be collected.
        Assert.False(identity.IsSameProcess("boot-a", new ProcessStat('Z', 34313)));
        Assert.False(identity.IsSameProcess("boot-a", new ProcessStat('X', 34313)));
        Assert.False(identity.IsSameProcess("boot-a", null));
    }

    [Fact]
    public void IdentitiesAreEqualByPidStartTimeAndBoot()
    {
        Assert.Equal(new ProcessIdentity(1, 2, "b"), new ProcessIdentity(1, 2, "b"));
        Assert.NotEqual(new ProcessIdentity(1, 2, "b"), new ProcessIdentity(1, 3, "b"));
        Assert.NotEqual(new ProcessIdentity(1, 2, "b"), new ProcessIdentity(1, 2, "c"));
    }

    [Fact]
    public void ALiveProcessIsItselfUntilItEnds()
    {
        using var sleeper = Process.Start("sleep", "30");
        var identity = ProcessIdentity.Of(sleeper.Id);
        Assert.NotNull(identity);
        Assert.Equal(ProcessIdentity.CurrentBootId, identity.BootId);
        Assert.True(identity.IsAlive());
        Assert.Equal(identity, ProcessIdentity.Of(sleeper.Id));
        sleeper.Kill();
        sleeper.WaitForExit();
        Assert.False(identity.IsAlive());
        Assert.Null(ProcessIdentity.Of(sleeper.Id));
    }

    [Fact]
    public void RecordsKeepTheirIdentitiesAcrossARestart()
    {
        var container = new ContainerRecord
        {
            Id = "c", PodId = "p", Config = [], ImageId = "i", ImageName = "i", ImageRef = "i", RuntimeHandler = "runc",
            CreatedAtNanos = 1, LogPath = "/l", StopSignal = "SIGTERM",
            Init = new ProcessIdentity(10, 20, "boot"), Monitor = new ProcessIdentity(11, 19, "boot"),
        };
        var read = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(container, ContainerRecordJson.Default.ContainerRecord),
            ContainerRecordJson.Default.ContainerRecord)!;
        Assert.Equal((container.Init, container.Monitor), (read.Init, read.Monitor));

        var pod = new PodSandboxRecord { Id = "p", Config = [], RuntimeHandler = "runc", CreatedAtNanos = 1, Infra = new ProcessIdentity(12, 21, "boot") };
        var readPod = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(pod, PodSandboxRecordJson.Default.PodSandboxRecord),
            PodSandboxRecordJson.Default.PodSandboxRecord)!;
        Assert.Equal(pod.Infra, readPod.Infra);
    }
}
