using CriShim.NativeInterop;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Stats;

namespace CriShim.Runtime.Tests.Checkpoint;

public sealed class DumpImagesTmpfsTests : IDisposable
{
    private readonly string _workDir = Directory.CreateTempSubdirectory("crishim-dump-tmpfs-").FullName;

    private string ImagesDir => Path.Combine(_workDir, DumpImagesTmpfs.CheckpointImagesDirName);

    public DumpImagesTmpfsTests() => Directory.CreateDirectory(ImagesDir);

    public void Dispose()
    {
        if (Directory.Exists(_workDir)) DumpImagesTmpfs.DeleteWorkDir(_workDir);
    }

    /// <summary>Mounting needs root (the daemon's case); anyone else skips.</summary>
    private sealed class RootFactAttribute : FactAttribute
    {
        public RootFactAttribute()
        {
            if (!Environment.IsPrivilegedProcess) Skip = "mounting a tmpfs needs root";
        }
    }

    [RootFact]
    public void ADumpThatFitsInMemoryGetsAPrivateTmpfsThatDeletingTheWorkDirUnmounts()
    {
        Assert.True(DumpImagesTmpfs.TryMount(ImagesDir, 1 << 20, CgroupReader.Host).OnTmpfs);
        Assert.Equal(FileSystems.TmpFsMagic, FileSystems.StatFs(ImagesDir).Type);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(ImagesDir));
        File.WriteAllText(Path.Combine(ImagesDir, "pages-1.img"), "pages");

        DumpImagesTmpfs.DeleteWorkDir(_workDir);
        Assert.False(Directory.Exists(_workDir));
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), line => line.Contains(_workDir));
    }

    [RootFact]
    public void ADumpLargerThanHalfTheAvailableMemoryStaysOnDisk()
    {
        Assert.False(DumpImagesTmpfs.TryMount(ImagesDir, ulong.MaxValue / 4, CgroupReader.Host).OnTmpfs);
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), line => line.Contains(ImagesDir));
    }

    [RootFact]
    public void ADumpThatFitsTheNodeButNotTheDaemonsCgroupLimitStaysOnDisk()
    {
        // A fake cgroup tree in which this very process sits in a v2 cgroup with 64 MiB left below its limit.
        string fake = Path.Combine(_workDir, "fake");
        Directory.CreateDirectory(Path.Combine(fake, "proc", Environment.ProcessId.ToString()));
        Directory.CreateDirectory(Path.Combine(fake, "cgroup", "crishim.service"));
        File.WriteAllText(Path.Combine(fake, "proc", Environment.ProcessId.ToString(), "cgroup"), "0::/crishim.service\n");
        File.WriteAllText(Path.Combine(fake, "cgroup", "cgroup.controllers"), "memory\n");
        File.WriteAllText(Path.Combine(fake, "cgroup", "crishim.service", "memory.max"), $"{512 << 20}\n");
        File.WriteAllText(Path.Combine(fake, "cgroup", "crishim.service", "memory.current"), $"{448 << 20}\n");

        var placement = DumpImagesTmpfs.TryMount(ImagesDir, 1 << 20, new CgroupReader(Path.Combine(fake, "cgroup"), Path.Combine(fake, "proc")));

        Assert.False(placement.OnTmpfs);
        Assert.Contains($"{64 << 20} bytes left", placement.Reason);
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), line => line.Contains(ImagesDir));
    }

    private const ulong GiB = 1UL << 30;

    [Fact]
    public void WithAnUnlimitedCgroupTheNodesAvailableMemoryDecides()
    {
        var placement = DumpImagesTmpfs.Place(expectedBytes: 1 * GiB, availableMemory: 8 * GiB, cgroupHeadroom: null);

        Assert.True(placement.OnTmpfs);
        Assert.Equal(4 * GiB, placement.TmpfsBytes);
        Assert.Contains("unlimited", placement.Reason);
    }

    [Fact]
    public void ACgroupLimitBelowTheNodesAvailableMemorySendsABigDumpToDisk()
    {
        var placement = DumpImagesTmpfs.Place(expectedBytes: 1 * GiB, availableMemory: 8 * GiB, cgroupHeadroom: 2 * GiB);

        Assert.False(placement.OnTmpfs);
        Assert.Contains("memory cgroup", placement.Reason);
    }

    [Fact]
    public void ACgroupLimitCapsTheTmpfsAtHalfItsRoom()
    {
        var placement = DumpImagesTmpfs.Place(expectedBytes: 256 << 20, availableMemory: 8 * GiB, cgroupHeadroom: 1 * GiB);

        Assert.True(placement.OnTmpfs);
        Assert.Equal(GiB / 2, placement.TmpfsBytes);
        Assert.Contains("memory cgroup", placement.Reason);
    }

    [Fact]
    public void AGenerousCgroupLimitLeavesTheNodesMemoryToDecide()
    {
        var placement = DumpImagesTmpfs.Place(expectedBytes: 1 * GiB, availableMemory: 2 * GiB, cgroupHeadroom: 16 * GiB);

        Assert.False(placement.OnTmpfs);
        Assert.DoesNotContain("cgroup", placement.Reason);
    }
}
