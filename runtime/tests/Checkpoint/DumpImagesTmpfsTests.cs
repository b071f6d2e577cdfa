using CriShim.NativeInterop;
using CriShim.Runtime.Checkpoint;

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
        Assert.True(DumpImagesTmpfs.TryMount(ImagesDir, 1 << 20));
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
        Assert.False(DumpImagesTmpfs.TryMount(ImagesDir, ulong.MaxValue / 4));
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), line => line.Contains(ImagesDir));
    }
}
