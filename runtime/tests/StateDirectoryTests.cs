using CriShim.Runtime.Store;

namespace CriShim.Runtime.Tests;

public sealed class StateDirectoryTests : IDisposable
{
    private readonly string _base = Directory.CreateTempSubdirectory("crishim-statedir-").FullName;

    public void Dispose() => Directory.Delete(_base, recursive: true);

    [Fact]
    public void ADirectoryAndItsMissingParentsGetExplicitModes()
    {
        string leaf = StateDirectory.Create(Path.Combine(_base, "a", "b", "leaf"), StateDirectory.GroupTraversable);
        Assert.Equal(StateDirectory.GroupTraversable, File.GetUnixFileMode(leaf));
        Assert.Equal(StateDirectory.Private, File.GetUnixFileMode(Path.Combine(_base, "a")));
        Assert.Equal(StateDirectory.Private, File.GetUnixFileMode(Path.Combine(_base, "a", "b")));
    }

    [Fact]
    public void StartUpClosesTheRootsAndTheirTopLevelDirectoriesLeftOpenByOlderVersions()
    {
        const UnixFileMode open = (UnixFileMode)0b111_101_101;
        string root = Directory.CreateDirectory(Path.Combine(_base, "lib")).FullName;
        string run = Directory.CreateDirectory(Path.Combine(_base, "run")).FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_000_001);
        string rootfs = Directory.CreateDirectory(Path.Combine(root, "rootfs")).FullName;
        string upper = Directory.CreateDirectory(Path.Combine(rootfs, "c1", "upper")).FullName;
        string pods = Directory.CreateDirectory(Path.Combine(run, "pods")).FullName;
        foreach (string directory in new[] { rootfs, upper, pods, run }) File.SetUnixFileMode(directory, open);

        StateDirectory.Tighten([root, run], groupSearchable: run);

        Assert.Equal(StateDirectory.Private, File.GetUnixFileMode(root));
        Assert.Equal(StateDirectory.Private, File.GetUnixFileMode(rootfs));
        Assert.Equal(StateDirectory.Private, File.GetUnixFileMode(pods));
        // The socket's directory: its group may reach the socket.
        Assert.Equal(StateDirectory.GroupTraversable, File.GetUnixFileMode(run));
        // Container content keeps its mode; its closed parents keep others out.
        Assert.Equal(open, File.GetUnixFileMode(upper));
    }
}
