using CriShim.Runtime.Containers;

namespace CriShim.Runtime.Tests.Containers;

public class LogPathTests
{
    [Theory]
    [InlineData("web/0.log", "/var/log/pods/ns_pod_uid/web/0.log")]
    [InlineData("0.log", "/var/log/pods/ns_pod_uid/0.log")]
    [InlineData("web/..0.log", "/var/log/pods/ns_pod_uid/web/..0.log")]
    public void ALogPathIsJoinedToThePodsLogDirectory(string logPath, string expected) =>
        Assert.Equal(expected, ContainerService.LogPathIn("/var/log/pods/ns_pod_uid", logPath));

    [Theory]
    [InlineData("/etc/cron.d/evil")]
    [InlineData("../../../etc/cron.d/evil")]
    [InlineData("web/../../other_pod/0.log")]
    [InlineData("..")]
    [InlineData("web/0.log\0")]
    public void ALogPathLeavingThePodsLogDirectoryIsInvalid(string logPath)
    {
        var e = Assert.Throws<InvalidRequestException>(() => ContainerService.LogPathIn("/var/log/pods/ns_pod_uid", logPath));
        Assert.Contains("log_path", e.Message);
    }
}
