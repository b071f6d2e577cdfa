using System.Diagnostics;
using CriShim.Runtime.Containers;

namespace CriShim.Runtime.Tests.Containers;

/// <summary>A localhost seccomp profile is a path a CRI client names: hostile until read bounded.</summary>
public sealed class SeccompProfileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-seccomp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AProfileIsReadAsJson()
    {
        string path = Path.Combine(_dir, "profile.json");
        File.WriteAllText(path, """{"defaultAction":"SCMP_ACT_ALLOW"}""");
        Assert.Equal("SCMP_ACT_ALLOW", ContainerBundle.LocalhostProfile(path)["defaultAction"]!.GetValue<string>());
    }

    [Fact]
    public async Task AFifoIsRefusedWithoutBlocking()
    {
        string fifo = Path.Combine(_dir, "fifo");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) await mkfifo.WaitForExitAsync();
        // A blocking open of a FIFO with no writer never returns: the task would not finish.
        var read = Task.Run(() => ContainerBundle.LocalhostProfile(fifo));
        Assert.Same(read, await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(10))));
        await Assert.ThrowsAsync<InvalidRequestException>(() => read);
    }

    [Fact]
    public void ADeviceIsNotReadToExhaustion() =>
        Assert.Throws<InvalidRequestException>(() => ContainerBundle.LocalhostProfile("/dev/zero"));

    [Fact]
    public void AnOversizedProfileIsRefused()
    {
        string path = Path.Combine(_dir, "huge.json");
        File.WriteAllText(path, "[" + new string(' ', 2 << 20) + "]");
        Assert.Contains("more than", Assert.Throws<InvalidRequestException>(() => ContainerBundle.LocalhostProfile(path)).Message);
    }

    [Fact]
    public void NotJsonIsInvalidArgument()
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, "not json");
        Assert.Throws<InvalidRequestException>(() => ContainerBundle.LocalhostProfile(path));
    }
}
