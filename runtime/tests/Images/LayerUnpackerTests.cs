using System.Formats.Tar;
using CriShim.NativeInterop;
using CriShim.Runtime.Images;

namespace CriShim.Runtime.Tests.Images;

public sealed class LayerUnpackerTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("crishim-unpack-").FullName;
    private string Root => Path.Combine(_work, "root");

    public LayerUnpackerTests() => Directory.CreateDirectory(Root);

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private static byte[] Tar(params TarEntry[] entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = new TarWriter(buffer, leaveOpen: true))
        {
            foreach (var entry in entries) writer.WriteEntry(entry);
        }
        return buffer.ToArray();
    }

    private static PaxTarEntry File(string name, string content, UnixFileMode mode = (UnixFileMode)0b110_100_100, int uid = 0, int gid = 0,
        Dictionary<string, string>? attributes = null) =>
        new(TarEntryType.RegularFile, name, attributes ?? [])
        {
            DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)),
            Mode = mode,
            Uid = uid,
            Gid = gid,
            ModificationTime = new DateTimeOffset(2020, 1, 2, 3, 4, 5, TimeSpan.Zero),
        };

    private static PaxTarEntry Entry(TarEntryType type, string name, string? link = null)
    {
        var entry = new PaxTarEntry(type, name) { Mode = (UnixFileMode)0b111_101_101 };
        if (link is not null) entry.LinkName = link;
        return entry;
    }

    private Task<LayerUsage> UnpackAsync(byte[] tar) => LayerUnpacker.UnpackAsync(new MemoryStream(tar), Root, tar.Length, CancellationToken.None);

    [Fact]
    public async Task KeepsOwnersModesTimesLinksAndDevices()
    {
        var usage = await UnpackAsync(Tar(
            Entry(TarEntryType.Directory, "etc/"),
            File("etc/passwd", "root:x:0:0", (UnixFileMode)0b100_100_100, uid: 12, gid: 34),
            File("bin/tool", "#!", (UnixFileMode)0b111_101_101 | UnixFileMode.SetUser, attributes: new() { ["SCHILY.xattr.user.origin"] = "layer" }),
            Entry(TarEntryType.HardLink, "bin/tool-link", "bin/tool"),
            Entry(TarEntryType.SymbolicLink, "etc/link", "/etc/passwd"),
            new PaxTarEntry(TarEntryType.CharacterDevice, "dev/null") { DeviceMajor = 1, DeviceMinor = 3, Mode = (UnixFileMode)0b110_110_110 },
            new PaxTarEntry(TarEntryType.Fifo, "run/fifo") { Mode = (UnixFileMode)0b110_000_000 }));

        var passwd = new FileInfo(Path.Combine(Root, "etc/passwd"));
        Assert.Equal("root:x:0:0", System.IO.File.ReadAllText(passwd.FullName));
        Assert.Equal((UnixFileMode)0b100_100_100, passwd.UnixFileMode);
        Assert.Equal(new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc), passwd.LastWriteTimeUtc);
        Assert.Contains("12 34", Stat(passwd.FullName));
        Assert.True(System.IO.File.GetUnixFileMode(Path.Combine(Root, "bin/tool")).HasFlag(UnixFileMode.SetUser), "chown must not clear setuid");
        Assert.Equal("layer", FileNodes.GetExtendedAttributeText(Path.Combine(Root, "bin/tool"), "user.origin"));
        Assert.Equal(Stat(Path.Combine(Root, "bin/tool"), "%i"), Stat(Path.Combine(Root, "bin/tool-link"), "%i"));
        Assert.Equal("/etc/passwd", new FileInfo(Path.Combine(Root, "etc/link")).LinkTarget);
        Assert.Equal("character special file 1,3", Stat(Path.Combine(Root, "dev/null"), "%F %Hr,%Lr"));
        Assert.Equal("fifo", Stat(Path.Combine(Root, "run/fifo"), "%F"));
        Assert.Equal((ulong)"root:x:0:0".Length + 2, usage.Bytes);
        Assert.True(usage.Inodes >= 8);
    }

    [Fact]
    public async Task WhiteoutsBecomeOverlayWhiteoutsAndOpaqueDirsGetTheXattr()
    {
        await UnpackAsync(Tar(
            File("data/.wh.removed", ""),
            Entry(TarEntryType.Directory, "data/opaque/"),
            File("data/opaque/.wh..wh..opq", ""),
            File("data/opaque/new", "n"),
            File(".wh..wh.plnk", "")));

        Assert.True(FileNodes.IsWhiteout(Path.Combine(Root, "data/removed")));
        Assert.False(System.IO.File.Exists(Path.Combine(Root, "data/.wh.removed")));
        Assert.Equal("y", FileNodes.GetExtendedAttributeText(Path.Combine(Root, "data/opaque"), "trusted.overlay.opaque"));
        Assert.False(System.IO.File.Exists(Path.Combine(Root, "data/opaque/.wh..wh..opq")));
        Assert.Equal(["new"], Directory.GetFileSystemEntries(Path.Combine(Root, "data/opaque")).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(Root));
    }

    [Theory]
    [InlineData(".wh.")]
    [InlineData(".wh..")]
    [InlineData(".wh...")]
    public async Task AWhiteoutThatNamesNoEntryIsRefusedAndRemovesNothing(string whiteout)
    {
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => UnpackAsync(Tar(
            File("data/keep", "k"),
            File("data/sub/" + whiteout, ""))));
        Assert.Contains("names no entry", e.Message);
        Assert.Equal("k", System.IO.File.ReadAllText(Path.Combine(Root, "data/keep")));
        Assert.True(Directory.Exists(Path.Combine(Root, "data/sub")));
    }

    [Fact]
    public async Task ATarHeaderClaimingAHugeFileDoesNotPreallocatePastTheLayersSize()
    {
        const long claimed = 64L << 20;
        byte[] tar = Tar(File("big", "only a few bytes"));
        // The size field (12 bytes of octal at offset 124 of the file's ustar header) lies.
        int header = RegularFileHeader(tar);
        System.Text.Encoding.ASCII.GetBytes(Convert.ToString(claimed, 8).PadLeft(11, '0') + "\0").CopyTo(tar, header + 124);
        FixChecksum(tar, header);

        await Assert.ThrowsAnyAsync<Exception>(() => LayerUnpacker.UnpackAsync(new MemoryStream(tar), Root, tar.Length, CancellationToken.None));
        var status = LinkStatus.Of(Path.Combine(Root, "big"));
        Assert.True(status is null || status.Value.AllocatedBytes <= (ulong)tar.Length + 4096,
            $"{status?.AllocatedBytes} bytes allocated for a {tar.Length}-byte layer");
    }

    /// <summary>The offset of the first regular file's ustar header, past any pax headers.</summary>
    private static int RegularFileHeader(byte[] tar)
    {
        int offset = 0;
        while (tar[offset + 156] != (byte)'0')
        {
            long size = Convert.ToInt64(System.Text.Encoding.ASCII.GetString(tar, offset + 124, 11), 8);
            offset += 512 + (int)((size + 511) / 512 * 512);
        }
        return offset;
    }

    private static void FixChecksum(byte[] tar, int header)
    {
        Array.Fill(tar, (byte)' ', header + 148, 8);
        int sum = tar.AsSpan(header, 512).ToArray().Sum(b => b);
        System.Text.Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(tar, header + 148);
    }

    [Theory]
    [InlineData("../escaped", "climbs out")]
    [InlineData("a/../../escaped", "climbs out")]
    [InlineData("/escaped", "absolute path")]
    public async Task EntriesThatLeaveTheRootAreRefused(string name, string reason)
    {
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => UnpackAsync(Tar(File(name, "x"))));
        Assert.Contains(name, e.Message);
        Assert.Contains(reason, e.Message);
        Assert.False(System.IO.File.Exists(Path.Combine(_work, "escaped")));
        Assert.False(System.IO.File.Exists("/escaped"));
    }

    [Fact]
    public async Task WritingThroughASymlinkIsRefusedAndNothingLandsOutside()
    {
        string outside = Path.Combine(_work, "outside");
        Directory.CreateDirectory(outside);
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => UnpackAsync(Tar(
            Entry(TarEntryType.SymbolicLink, "etc", outside),
            File("etc/passwd", "owned"))));
        Assert.Contains("symlink", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public async Task AHardLinkToOutsideIsRefused()
    {
        string secret = Path.Combine(_work, "secret");
        System.IO.File.WriteAllText(secret, "s");
        await Assert.ThrowsAsync<UnsafeLayerException>(() => UnpackAsync(Tar(Entry(TarEntryType.HardLink, "stolen", "../secret"))));
        await Assert.ThrowsAsync<UnsafeLayerException>(() => UnpackAsync(Tar(
            Entry(TarEntryType.SymbolicLink, "up", _work),
            Entry(TarEntryType.HardLink, "stolen", "up/secret"))));
        Assert.False(System.IO.File.Exists(Path.Combine(Root, "stolen")));
        Assert.Equal("1", Stat(secret, "%h"));
    }

    [Fact]
    public async Task ALaterEntryReplacesAnEarlierOne()
    {
        await UnpackAsync(Tar(
            Entry(TarEntryType.Directory, "thing/"),
            File("thing/inside", "x"),
            File("thing", "now a file"),
            Entry(TarEntryType.SymbolicLink, "link", "thing"),
            File("link", "now a file too")));
        Assert.Equal("now a file", System.IO.File.ReadAllText(Path.Combine(Root, "thing")));
        Assert.Null(new FileInfo(Path.Combine(Root, "link")).LinkTarget);
        Assert.Equal("now a file too", System.IO.File.ReadAllText(Path.Combine(Root, "link")));
    }

    private static string Stat(string path, string format = "%u %g")
    {
        var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", format, path]) { RedirectStandardOutput = true })!;
        string output = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return output;
    }
}
