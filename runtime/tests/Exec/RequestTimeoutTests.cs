using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Tests.Exec;

public class RequestTimeoutTests
{
    [Theory]
    [InlineData(-1)]
    [InlineData(RequestTimeout.MaxSeconds + 1)]
    [InlineData(long.MaxValue)]
    public void ATimeoutTheDaemonCannotWaitIsTheCallersMistake(long seconds) =>
        Assert.Throws<InvalidRequestException>(() => RequestTimeout.FromSeconds(seconds, "timeout"));

    [Fact]
    public void TheLongestTimeoutIsOneATimerTakes()
    {
        using var timer = new CancellationTokenSource();
        timer.CancelAfter(RequestTimeout.FromSeconds(RequestTimeout.MaxSeconds, "timeout"));
        Assert.False(timer.IsCancellationRequested);
    }
}
