using CriShim.Runtime.Daemon;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Tests;

public class AtomicFileTests
{
    [Fact]
    public void WritesWithModeAndLeavesNoTempFiles()
    {
        string dir = Directory.CreateTempSubdirectory("crishim-atomic").FullName;
        string path = Path.Combine(dir, "state.json");
        AtomicFile.WriteText(path, "one");
        AtomicFile.WriteText(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Single(Directory.GetFiles(dir));
        Directory.Delete(dir, true);
    }
}

public class PodCidrStoreTests
{
    [Fact]
    public void CidrSurvivesARestartAndEmptyIsIgnored()
    {
        string dir = Directory.CreateTempSubdirectory("crishim-cidr").FullName;
        new PodCidrStore(dir).Update("10.88.0.0/16");
        var reloaded = new PodCidrStore(dir);
        reloaded.Update("");
        Assert.Equal("10.88.0.0/16", reloaded.PodCidr);
        Assert.Throws<ArgumentException>(() => reloaded.Update("10.88.0.0/99"));
        Assert.Equal("10.88.0.0/16", new PodCidrStore(dir).PodCidr);
        Directory.Delete(dir, true);
    }
}
