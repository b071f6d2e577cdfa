using CriShim.Runtime.Checkpoint;

namespace CriShim.Runtime.Tests.Checkpoint;

public class CheckpointRetentionTests
{
    private static readonly string Prefix = CheckpointRetention.ArchivePrefix("web", "default", "nginx");

    [Theory]
    [InlineData("checkpoint-web_default-nginx-2026-08-01T10:11:12Z.tar", "2026-08-01T10:11:12+00:00")]
    [InlineData("checkpoint-web_default-nginx-2026-08-01T12:11:12+02:00.tar", "2026-08-01T10:11:12+00:00")]
    [InlineData("checkpoint-web_default-nginx-2026-08-01T10:11:12.123456789Z.tar", "2026-08-01T10:11:12.1234567+00:00")]
    public void KubeletNamesCarryTheirTime(string name, string time) =>
        Assert.Equal(DateTimeOffset.Parse(time), CheckpointRetention.ArchiveTime(name, Prefix));

    [Theory]
    [InlineData("checkpoint-web_default-nginx-2026-08-01T10:11:12Z.tar.bak")]
    [InlineData("checkpoint-web_default-nginx-2026-08-01T10:11:12.tar")]
    [InlineData("checkpoint-web_default-nginx-latest.tar")]
    [InlineData("checkpoint-web_default-nginx-sidecar-2026-08-01T10:11:12Z.tar")]
    [InlineData("checkpoint-web_other-nginx-2026-08-01T10:11:12Z.tar")]
    [InlineData("xcheckpoint-web_default-nginx-2026-08-01T10:11:12Z.tar")]
    [InlineData("checkpoint-web_default-nginx-2026-13-01T10:11:12Z.tar")]
    public void OtherNamesAreNotThisContainersArchives(string name) => Assert.Null(CheckpointRetention.ArchiveTime(name, Prefix));

    [Fact]
    public void TheNewestByNameTimeStayAndTheJustWrittenOneAlways()
    {
        string[] names =
        [
            "checkpoint-web_default-nginx-2026-08-01T10:00:00Z.tar",
            "checkpoint-web_default-nginx-2026-08-01T12:30:00+02:00.tar", // 10:30 UTC
            "checkpoint-web_default-nginx-2026-08-01T11:00:00Z.tar",
            "checkpoint-web_default-nginx-sidecar-2020-01-01T00:00:00Z.tar",
            "checkpoint-web_default-nginx-2020-01-01T00:00:00Z.tar.bak",
            "notes.txt",
        ];
        string justWritten = "checkpoint-web_default-nginx-2026-08-01T09:00:00Z.tar";
        Assert.Equal(["checkpoint-web_default-nginx-2026-08-01T12:30:00+02:00.tar", "checkpoint-web_default-nginx-2026-08-01T10:00:00Z.tar"],
            CheckpointRetention.Expired([.. names, justWritten], Prefix, justWritten, keep: 2));
        Assert.Equal(3, CheckpointRetention.Expired([.. names, justWritten], Prefix, justWritten, keep: 1).Count);
        Assert.Empty(CheckpointRetention.Expired([.. names, justWritten], Prefix, justWritten, keep: 4));
    }
}
