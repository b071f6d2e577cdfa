using System.Formats.Tar;
using CriShim.Runtime.Checkpoint;

namespace CriShim.Runtime.Tests.Checkpoint;

public class CheckpointArchiveTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-archive-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void CommitWritesARootOnlyTarEvenUnderAPermissiveUmaskAndLeavesNoTemp()
    {
        string images = Path.Combine(_dir, "work", "checkpoint");
        Directory.CreateDirectory(images);
        File.WriteAllText(Path.Combine(images, "inventory.img"), "inv");
        string location = Path.Combine(_dir, "out", "nested", "checkpoint-pod_ns-ctr-2026-11-30T01:02:03Z.tar");
        long size;
        using (var archive = CheckpointArchive.Create(location, CheckpointArchive.TempPathFor(location)))
        {
            archive.AddTree(images, "checkpoint", CancellationToken.None);
            archive.AddBytes("config.dump", "{}"u8);
            size = archive.Commit();
        }
        Assert.Equal(new FileInfo(location).Length, size);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(location));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(location)!));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(location)!));
        using var reader = new TarReader(File.OpenRead(location));
        var names = new List<(string, TarEntryType)>();
        while (reader.GetNextEntry() is { } entry) names.Add((entry.Name, entry.EntryType));
        Assert.Equal([("checkpoint/", TarEntryType.Directory), ("checkpoint/inventory.img", TarEntryType.RegularFile), ("config.dump", TarEntryType.RegularFile)], names);
    }

    [Fact]
    public void FilesAreCopiedWholeWithTheirModeBetweenOtherEntries()
    {
        string images = Path.Combine(_dir, "images");
        Directory.CreateDirectory(images);
        var contents = new Dictionary<string, byte[]>();
        foreach (var (name, length) in new[] { ("a.img", 1), ("b.img", 513), ("pages-1.img", (3 << 20) + 7), ("z.img", 0) })
        {
            var bytes = new byte[length];
            new Random(length).NextBytes(bytes);
            contents[$"checkpoint/{name}"] = bytes;
            File.WriteAllBytes(Path.Combine(images, name), bytes);
            File.SetUnixFileMode(Path.Combine(images, name), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        }
        contents["config.dump"] = "{}"u8.ToArray();
        string location = Path.Combine(_dir, "copied.tar");
        using (var archive = CheckpointArchive.Create(location, CheckpointArchive.TempPathFor(location)))
        {
            archive.AddTree(images, "checkpoint", CancellationToken.None);
            archive.AddBytes("config.dump", contents["config.dump"]);
            archive.Commit();
        }
        using var reader = new TarReader(File.OpenRead(location));
        var read = new Dictionary<string, byte[]>();
        while (reader.GetNextEntry() is { } entry)
        {
            if (entry.EntryType == TarEntryType.Directory) continue;
            using var data = new MemoryStream();
            entry.DataStream?.CopyTo(data);
            read[entry.Name] = data.ToArray();
            if (entry.Name.StartsWith("checkpoint/")) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, entry.Mode);
        }
        Assert.Equal(contents.Keys.Order(), read.Keys.Order());
        foreach (var (name, bytes) in contents) Assert.True(bytes.AsSpan().SequenceEqual(read[name]), $"{name} differs");
    }

    [Fact]
    public void AnAbandonedArchiveLeavesTheLocationUntouched()
    {
        string location = Path.Combine(_dir, "x.tar");
        File.WriteAllText(location, "previous archive");
        string temp = CheckpointArchive.TempPathFor(location);
        using (var archive = CheckpointArchive.Create(location, temp))
        {
            archive.AddBytes("config.dump", "{}"u8);
        }
        Assert.Equal("previous archive", File.ReadAllText(location));
        Assert.False(File.Exists(temp));
    }

    [Fact]
    public void TheTempFileIsExclusive()
    {
        string location = Path.Combine(_dir, "y.tar");
        string temp = CheckpointArchive.TempPathFor(location);
        File.WriteAllText(temp, "someone else's");
        Assert.Throws<IOException>(() => CheckpointArchive.Create(location, temp));
        Assert.Equal("someone else's", File.ReadAllText(temp));
    }

    [Fact]
    public async Task AFileGrowingWhileItIsArchivedIsCopiedAsTheSizeItsHeaderDeclares()
    {
        string log = Path.Combine(_dir, "container.log");
        byte[] line = "2026-12-05T14:00:00.000000000Z stdout F line of a busy container\n"u8.ToArray();
        long initialLength = (8 << 20) / line.Length * line.Length;
        using (var initial = File.Create(log))
        {
            for (long i = 0; i < initialLength / line.Length; i++) initial.Write(line);
        }
        string location = Path.Combine(_dir, "growing.tar");
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            using var append = new FileStream(log, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            while (!stop.IsCancellationRequested) append.Write(line);
        });
        using (var archive = CheckpointArchive.Create(location, CheckpointArchive.TempPathFor(location)))
        {
            archive.AddFileSnapshot(log, "container.log", CancellationToken.None);
            archive.AddBytes("after.dump", "intact"u8);
            archive.Commit();
        }
        stop.Cancel();
        await writer;

        using var reader = new TarReader(File.OpenRead(location));
        var logEntry = reader.GetNextEntry(copyData: true)!;
        Assert.Equal("container.log", logEntry.Name);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, logEntry.Mode);
        var copied = new MemoryStream();
        logEntry.DataStream!.CopyTo(copied);
        Assert.Equal(logEntry.Length, copied.Length);
        Assert.True(copied.Length >= initialLength && copied.Length % line.Length == 0, $"{copied.Length} bytes is not whole lines");
        var after = reader.GetNextEntry(copyData: true)!;
        Assert.Equal("after.dump", after.Name);
        Assert.Equal("intact", new StreamReader(after.DataStream!).ReadToEnd());
        Assert.Null(reader.GetNextEntry());
    }

    [Theory]
    [InlineData("/proc/1/status", true)]
    [InlineData("/etc/hosts", true)]
    [InlineData("/etc/hostsfile", false)]
    [InlineData("/data/mounted/file", true)]
    [InlineData("/tmp/count", false)]
    public void MountDestinationsAreLeftOutOfTheDiff(string path, bool excluded) =>
        Assert.Equal(excluded, RootfsDiff.IsExcluded(path, ["/proc", "/etc/hosts", "/data/mounted/"]));
}
