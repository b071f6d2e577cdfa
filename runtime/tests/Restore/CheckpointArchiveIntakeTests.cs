using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Restore;

namespace CriShim.Runtime.Tests.Restore;

public class CheckpointArchiveIntakeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-intake-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private const string ConfigDump =
        """{"id":"abc","name":"counter","rootfsImage":"","rootfsImageRef":"","rootfsImageName":"busybox","runtime":"runc","createdTime":"2026-01-01T00:00:00Z","checkpointedTime":"2026-01-01T00:00:00Z","restored":false}""";

    private const string SpecDump = """{"process":{"args":["sh"],"env":[],"cwd":"/"},"mounts":[]}""";

    private static PaxTarEntry File(string name, byte[] content) => new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) };

    /// <summary>A containerd-style rootfs diff: a gzip-compressed tar holding <paramref name="entries"/>.</summary>
    private static byte[] GzipDiff(params TarEntry[] entries)
    {
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var entry in entries) tar.WriteEntry(entry);
        }
        return compressed.ToArray();
    }

    private string Archive(params TarEntry[] extra)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.tar");
        using var stream = System.IO.File.Create(path);
        using var tar = new TarWriter(stream, TarEntryFormat.Pax);
        tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "checkpoint/"));
        tar.WriteEntry(File("checkpoint/inventory.img", "inv"u8.ToArray()));
        tar.WriteEntry(File("config.dump", Encoding.UTF8.GetBytes(ConfigDump)));
        tar.WriteEntry(File("spec.dump", Encoding.UTF8.GetBytes(SpecDump)));
        tar.WriteEntry(File("dump.log", "not extracted"u8.ToArray()));
        foreach (var entry in extra) tar.WriteEntry(entry);
        return path;
    }

    [Fact]
    public void ExtractsWhatARestoreUsesPrivatelyAndAcceptsAGzipRootfsDiff()
    {
        var added = File("etc/added", "new"u8.ToArray());
        string archive = Archive(File("rootfs-diff.tar", GzipDiff(added)), File("deleted.files", "[\"/etc/group\"]"u8.ToArray()));
        string workDir = Path.Combine(_dir, "work");

        var checkpoint = CheckpointArchiveIntake.Extract(archive, workDir, CancellationToken.None);

        Assert.Equal("busybox", checkpoint.Config.RootfsImageName);
        Assert.Equal(["etc/group"], checkpoint.DeletedFiles);
        Assert.Equal("inv", System.IO.File.ReadAllText(Path.Combine(checkpoint.ImagesDir, "inventory.img")));
        Assert.False(System.IO.File.Exists(Path.Combine(workDir, "dump.log")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, System.IO.File.GetUnixFileMode(workDir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, System.IO.File.GetUnixFileMode(Path.Combine(checkpoint.ImagesDir, "inventory.img")));
        Assert.True(CheckpointArchiveIntake.IsGzip(checkpoint.RootfsDiff!));
        using var diff = new TarReader(CheckpointArchiveIntake.OpenRootfsDiff(checkpoint.RootfsDiff!));
        Assert.Equal("etc/added", diff.GetNextEntry()!.Name);
    }

    [Fact]
    public void ReadsTheDumpsCriuOptionsWhenTheArchiveRecordsThemAndRefusesMalformedOrHugeOnes()
    {
        Assert.Null(CheckpointArchiveIntake.Extract(Archive(), Path.Combine(_dir, "work0"), CancellationToken.None).DumpOptions);
        string recorded = Archive(File(CriuDumpOptions.FileName, """{"tcpEstablished":true,"extUnixSk":false}"""u8.ToArray()));
        Assert.Equal(new CriuDumpOptions(TcpEstablished: true, ExtUnixSk: false),
            CheckpointArchiveIntake.Extract(recorded, Path.Combine(_dir, "work1"), CancellationToken.None).DumpOptions);

        var e = Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(
            Archive(File(CriuDumpOptions.FileName, """{"tcpEstablished":"yes"}"""u8.ToArray())), Path.Combine(_dir, "work2"), CancellationToken.None));
        Assert.Contains($"{CriuDumpOptions.FileName} is not valid JSON", e.Message);
        e = Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(
            Archive(File(CriuDumpOptions.FileName, new byte[CheckpointArchiveIntake.MaxJsonBytes + 1])), Path.Combine(_dir, "work3"), CancellationToken.None));
        Assert.Contains($"{CriuDumpOptions.FileName} claims", e.Message);
    }

    [Fact]
    public void RefusesADeviceInAGzipRootfsDiffAndADeletionOutsideTheRoot()
    {
        var device = new PaxTarEntry(TarEntryType.BlockDevice, "dev/sda") { DeviceMajor = 8, DeviceMinor = 0 };
        var e = Assert.Throws<InvalidRequestException>(() =>
            CheckpointArchiveIntake.Extract(Archive(File("rootfs-diff.tar", GzipDiff(device))), Path.Combine(_dir, "work1"), CancellationToken.None));
        Assert.Contains("BlockDevice", e.Message);

        e = Assert.Throws<InvalidRequestException>(() =>
            CheckpointArchiveIntake.Extract(Archive(File("deleted.files", "[\"/../etc/passwd\"]"u8.ToArray())), Path.Combine(_dir, "work2"), CancellationToken.None));
        Assert.Contains("..", e.Message);
    }

    [Fact]
    public void ContainerdsWhiteoutsBecomeDeletionsAndOneThatNamesNoEntryIsRefused()
    {
        string archive = Archive(File("rootfs-diff.tar", GzipDiff(
            File("etc/.wh.group", []), File("var/.wh..wh..opq", []), File("var/added", "new"u8.ToArray()), File(".wh.home", []))));

        var checkpoint = CheckpointArchiveIntake.Extract(archive, Path.Combine(_dir, "work1"), CancellationToken.None);

        Assert.Equal(["etc/group", "home"], checkpoint.Whiteouts.Removed);
        Assert.Equal(["var"], checkpoint.Whiteouts.Emptied);
        Assert.True(RootfsDiffWhiteouts.IsWhiteout("etc/.wh.group"));
        Assert.False(RootfsDiffWhiteouts.IsWhiteout("var/added"));

        var e = Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(
            Archive(File("rootfs-diff.tar", GzipDiff(File("etc/.wh..", [])))), Path.Combine(_dir, "work2"), CancellationToken.None));
        Assert.Contains("names no entry", e.Message);
    }

    [Fact]
    public void RefusesAnEntryInsideAFileAndOneThatAppearsTwice()
    {
        Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(
            Archive(File("checkpoint/inventory.img/x", "x"u8.ToArray())), Path.Combine(_dir, "work1"), CancellationToken.None));
        Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(
            Archive(File("./config.dump", "{}"u8.ToArray())), Path.Combine(_dir, "work2"), CancellationToken.None));
        Assert.False(Directory.Exists(Path.Combine(_dir, "work1")));
        Assert.False(Directory.Exists(Path.Combine(_dir, "work2")));
    }

    public static TheoryData<string> ChangesUnderneath => ["a larger spec.dump", "a symlink"];

    [Theory]
    [MemberData(nameof(ChangesUnderneath))]
    public void AnArchiveThatChangesBetweenThePassesIsRefused(string change)
    {
        string archive = Archive();
        // Rewritten in place (the same inode the open handle reads): entries the first pass never saw.
        byte[] changed = System.IO.File.ReadAllBytes(change == "a symlink"
            ? Archive(new PaxTarEntry(TarEntryType.SymbolicLink, "checkpoint/host") { LinkName = "/etc" })
            : Archive(File("spec.dump", Encoding.UTF8.GetBytes(SpecDump[..^1] + ",\"pad\":\"" + new string('x', 5 << 20) + "\"}"))));
        string workDir = Path.Combine(_dir, "work");

        Assert.Throws<InvalidRequestException>(() => CheckpointArchiveIntake.Extract(archive, workDir, CancellationToken.None,
            betweenPasses: () => System.IO.File.WriteAllBytes(archive, changed)));
    }
}
