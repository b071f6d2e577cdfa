using CriShim.NativeInterop;

namespace CriShim.NativeInterop.Tests;

public sealed class FileNodesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-nodes-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AZeroZeroCharacterDeviceIsAWhiteoutAndOtherNodesAreNot()
    {
        string whiteout = Path.Combine(_dir, "gone"), device = Path.Combine(_dir, "null"), fifo = Path.Combine(_dir, "fifo");
        FileNodes.MakeCharacterDevice(whiteout, 0, 0, 0);
        FileNodes.MakeCharacterDevice(device, UnixFileMode.UserRead, 1, 3);
        FileNodes.MakeFifo(fifo, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.True(FileNodes.IsWhiteout(whiteout));
        Assert.False(FileNodes.IsWhiteout(device));
        Assert.False(FileNodes.IsWhiteout(fifo));
        Assert.False(FileNodes.IsWhiteout(Path.Combine(_dir, "missing")));
        Assert.Equal(0x103UL, FileNodes.MakeDevice(1, 3));
        Assert.Equal(0x1111_0370UL, FileNodes.MakeDevice(259, 70000)); // glibc's gnu_dev_makedev

    }

    [Fact]
    public void ExtendedAttributesAreSetOnTheLinkNotItsTarget()
    {
        string file = Path.Combine(_dir, "file");
        File.WriteAllText(file, "x");
        FileNodes.SetExtendedAttribute(file, "user.test", "value"u8);
        Assert.Equal("value", FileNodes.GetExtendedAttributeText(file, "user.test"));
        Assert.Null(FileNodes.GetExtendedAttribute(file, "user.absent"));
        string link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, file);
        FileNodes.SetExtendedAttribute(link, "trusted.test", "on-link"u8);
        Assert.Null(FileNodes.GetExtendedAttribute(file, "trusted.test"));
        Assert.Equal("on-link", FileNodes.GetExtendedAttributeText(link, "trusted.test"));
    }

    [Fact]
    public void HardLinksShareContentAndChangeOwnerDoesNotFollowSymlinks()
    {
        string file = Path.Combine(_dir, "file"), hard = Path.Combine(_dir, "hard"), link = Path.Combine(_dir, "link");
        File.WriteAllText(file, "shared");
        FileNodes.MakeHardLink(file, hard);
        File.AppendAllText(hard, "!");
        Assert.Equal("shared!", File.ReadAllText(file));
        File.CreateSymbolicLink(link, file);
        FileNodes.ChangeOwner(link, 4321, 4321);
        Assert.Equal(4321, OwnerOf(link));
        Assert.Equal(0, OwnerOf(file));
        var e = Assert.Throws<NativeCallException>(() => FileNodes.MakeHardLink(Path.Combine(_dir, "none"), Path.Combine(_dir, "x")));
        Assert.Equal("link", e.Call);
    }

    [Fact]
    public void RunInGivesTheActionItsOwnWorkingDirectory()
    {
        string before = Environment.CurrentDirectory;
        string seen = "";
        WorkingDirectories.RunIn(_dir, () => seen = Path.GetFullPath("."));
        Assert.Equal(_dir, seen);
        Assert.Equal(before, Environment.CurrentDirectory);
        Assert.Throws<NativeCallException>(() => WorkingDirectories.RunIn(Path.Combine(_dir, "missing"), () => { }));
    }

    private static int OwnerOf(string path)
    {
        var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        string output = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return int.Parse(output);
    }
}
