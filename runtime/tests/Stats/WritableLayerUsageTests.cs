using CriShim.Runtime.Stats;

namespace CriShim.Runtime.Tests.Stats;

public sealed class WritableLayerUsageTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-upper-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void AllocatedBlocksAndInodesAreCountedOnceWithoutFollowingSymlinks()
    {
        string upper = Directory.CreateDirectory(Path.Combine(_root, "upper")).FullName;
        string outside = Directory.CreateDirectory(Path.Combine(_root, "outside")).FullName;
        File.WriteAllBytes(Path.Combine(outside, "big"), new byte[4 << 20]);
        var empty = WritableLayerUsage.Measure(upper);
        Assert.Equal(1UL, empty.InodesUsed);

        Directory.CreateDirectory(Path.Combine(upper, "etc", "app"));
        File.WriteAllBytes(Path.Combine(upper, "etc", "app", "data"), new byte[1 << 20]);
        CriShim.NativeInterop.FileNodes.MakeHardLink(Path.Combine(upper, "etc", "app", "data"), Path.Combine(upper, "data-link"));
        File.CreateSymbolicLink(Path.Combine(upper, "to-outside"), outside);
        using (var sparse = File.Create(Path.Combine(upper, "sparse"))) sparse.SetLength(64 << 20);

        var usage = WritableLayerUsage.Measure(upper);

        // upper, etc, etc/app, data (and its hard link, once), the symlink, the sparse file.
        Assert.Equal(6UL, usage.InodesUsed);
        Assert.InRange(usage.UsedBytes, (1UL << 20) + empty.UsedBytes, 2UL << 20);
    }

    [Fact]
    public void AMissingDirectoryUsesNothingAndAFreshMeasureIsCachedPerContainer()
    {
        Assert.Equal(default, WritableLayerUsage.Measure(Path.Combine(_root, "none")));
        var clock = new ManualClock();
        var layers = new WritableLayerUsage(clock);
        string upper = Directory.CreateDirectory(Path.Combine(_root, "c1")).FullName;
        var first = layers.Of("c1", upper);
        File.WriteAllBytes(Path.Combine(upper, "f"), new byte[65536]);
        Assert.Equal(first, layers.Of("c1", upper));
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(first.InodesUsed + 1, layers.Of("c1", upper).InodesUsed);
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = DateTimeOffset.UnixEpoch;
        public override DateTimeOffset GetUtcNow() => _now;
        public void Advance(TimeSpan by) => _now += by;
    }
}
