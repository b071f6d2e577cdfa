using CriShim.NativeInterop;

namespace CriShim.NativeInterop.Tests;

public sealed class PseudoFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-pseudo-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AProcFileReadsWholeAndAMissingOneAsNothing()
    {
        Assert.StartsWith($"{Environment.ProcessId} (", PseudoFiles.ReadText("/proc/self/stat"));
        Assert.Equal(File.ReadAllText("/proc/self/cgroup"), PseudoFiles.ReadText("/proc/self/cgroup"));
        Assert.Null(PseudoFiles.ReadText(Path.Combine(_dir, "gone")));
        Assert.Null(PseudoFiles.ReadText(_dir));
    }

    [Fact]
    public void AFileOverTheBoundIsCutAtItsLastWholeLine()
    {
        string line = new string('x', 99) + "\n";
        string path = Path.Combine(_dir, "big");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat(line, PseudoFiles.MaxBytes / line.Length + 10)));

        string text = PseudoFiles.ReadText(path)!;

        Assert.Equal(PseudoFiles.MaxBytes / line.Length * line.Length, text.Length);
        Assert.EndsWith("x\n", text);
    }
}
