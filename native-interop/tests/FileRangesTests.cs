using CriShim.NativeInterop;
using Microsoft.Win32.SafeHandles;

namespace CriShim.NativeInterop.Tests;

public sealed class FileRangesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-ranges-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ARangeLandsAtTheOffsetAcrossFilesystemsAndAShortSourceCopiesWhatItHas()
    {
        var source = new byte[(1 << 20) + 333];
        new Random(7).NextBytes(source);
        // /dev/shm is a tmpfs, the temp dir a disk: the copy a checkpoint makes from its tmpfs images into its archive.
        string sourcePath = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : _dir, $"crishim-ranges-{Guid.NewGuid():N}");
        File.WriteAllBytes(sourcePath, source);
        string destinationPath = Path.Combine(_dir, "out");
        File.WriteAllBytes(destinationPath, [.. Enumerable.Repeat((byte)0xEE, 100)]);
        try
        {
            using (SafeFileHandle from = File.OpenHandle(sourcePath), to = File.OpenHandle(destinationPath, FileMode.Open, FileAccess.Write))
            {
                Assert.Equal(source.Length - 10, FileRanges.Copy(from, 10, to, 50, source.Length - 10));
                Assert.Equal(5, FileRanges.Copy(from, source.Length - 5, to, 50 + source.Length - 10, 1000));
            }
            byte[] written = File.ReadAllBytes(destinationPath);
            Assert.Equal(50 + source.Length - 10 + 5, written.Length);
            Assert.All(written[..50], b => Assert.Equal(0xEE, b));
            Assert.True(written.AsSpan(50, source.Length - 10).SequenceEqual(source.AsSpan(10)));
            Assert.True(written.AsSpan(50 + source.Length - 10).SequenceEqual(source.AsSpan(source.Length - 5)));
        }
        finally
        {
            File.Delete(sourcePath);
        }
    }
}
