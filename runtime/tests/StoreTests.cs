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
        Assert.Throws<InvalidRequestException>(() => reloaded.Update("10.88.0.0/99"));
        Assert.Equal("10.88.0.0/16", new PodCidrStore(dir).PodCidr);
        Directory.Delete(dir, true);
    }
}

public class KeyedLockTests
{
    [Fact]
    public async Task LockObjectsAreDroppedWhenNoOneHoldsOrWaits()
    {
        var locks = new KeyedLock();
        for (int i = 0; i < 1000; i++)
        {
            using var _ = await locks.AcquireAsync($"id-{i}", CancellationToken.None);
        }
        Assert.Equal(0, locks.Count);

        // A waiter that gives up leaves nothing behind either.
        var held = await locks.AcquireAsync("busy", CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiter = locks.AcquireAsync("busy", cancel.Token);
        Assert.Equal(1, locks.Count);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
        held.Dispose();
        held.Dispose();
        Assert.Equal(0, locks.Count);
    }

    [Fact]
    public async Task CallsOnOneIdStillExcludeEachOther()
    {
        var locks = new KeyedLock();
        var inside = new int[4];
        var totals = new int[4];
        int overlaps = 0;
        // Workers come back for the same id while others wait for it, as repeated CRI calls on one container do.
        await Task.WhenAll(Enumerable.Range(0, 16).Select(worker => Task.Run(async () =>
        {
            int key = worker % 4;
            for (int round = 0; round < 25; round++)
            {
                using var _ = await locks.AcquireAsync($"id-{key}", CancellationToken.None);
                if (Interlocked.Increment(ref inside[key]) != 1) Interlocked.Increment(ref overlaps);
                int seen = totals[key];
                await Task.Yield();
                totals[key] = seen + 1;
                Interlocked.Decrement(ref inside[key]);
            }
        })));
        Assert.Equal(0, overlaps);
        Assert.All(totals, total => Assert.Equal(100, total));
        Assert.Equal(0, locks.Count);
    }
}
