using CriShim.Runtime.Pods;
using Xunit;

namespace CriShim.Runtime.Tests.Pods;

public class InfraSpecTests
{
    // The race is narrow: several rounds make a regression show.
    public static TheoryData<int> Rounds => new(Enumerable.Range(0, 20));

    [Theory]
    [MemberData(nameof(Rounds))]
    public void ConcurrentPodStartsAllPrepareTheSharedInfraRootfs(int round)
    {
        // make deps installs catatonit; without it no pod can start, so its absence fails here too.
        Assert.True(File.Exists(InfraSpec.CatatonitHostPath), $"{InfraSpec.CatatonitHostPath} is missing: run make deps");
        string rootfs = Path.Combine(Path.GetTempPath(), $"crishim-infra-{round}-{Guid.NewGuid():N}");
        try
        {
            // Real threads released together, as pods of one node start in parallel.
            var gate = new Barrier(16);
            var failures = new System.Collections.Concurrent.ConcurrentBag<Exception>();
            var threads = Enumerable.Range(0, 16).Select(_ => new Thread(() =>
            {
                gate.SignalAndWait();
                try { InfraSpec.EnsureRootfs(rootfs); }
                catch (Exception e) { failures.Add(e); }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());

            Assert.Empty(failures);

            string binary = Path.Combine(rootfs, "catatonit");
            Assert.Equal(new FileInfo(InfraSpec.CatatonitHostPath).Length, new FileInfo(binary).Length);
            Assert.True(File.GetUnixFileMode(binary).HasFlag(UnixFileMode.OtherExecute));
            Assert.Equal(["catatonit", "dev", "etc", "proc", "sys", "tmp"],
                Directory.EnumerateFileSystemEntries(rootfs).Select(Path.GetFileName).Order());
        }
        finally
        {
            Directory.Delete(rootfs, recursive: true);
        }
    }
}
