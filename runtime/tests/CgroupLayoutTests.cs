using CriShim.Runtime.Daemon;

namespace CriShim.Runtime.Tests;

public class CgroupLayoutTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-cgroup-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Hybrid(string unifiedControllers)
    {
        Directory.CreateDirectory(Path.Combine(_root, "memory"));
        Directory.CreateDirectory(Path.Combine(_root, "unified"));
        File.WriteAllText(Path.Combine(_root, "unified", "cgroup.controllers"), unifiedControllers);
    }

    [Fact]
    public void CrunOnAHybridLayoutWithControllersOnV2IsRefusedWithTheReasonAndTheFix()
    {
        Hybrid("hugetlb misc\n");
        string? problem = CgroupLayout.HandlerProblem(_root, "crun version 1.8.1");
        Assert.NotNull(problem);
        Assert.Contains("hugetlb, misc", problem);
        Assert.Contains("cgroups in hybrid mode not supported", problem);
        Assert.Contains($"mount -t cgroup -o hugetlb cgroup {_root}/hugetlb", problem);
        Assert.Contains($"mount -t cgroup -o misc cgroup {_root}/misc", problem);
    }

    [Fact]
    public void RuncOnTheSameLayoutIsFine()
    {
        Hybrid("hugetlb\n");
        Assert.Null(CgroupLayout.HandlerProblem(_root, "runc version 1.1.5+ds1"));
    }

    [Fact]
    public void CrunOnAHybridLayoutWithAnEmptyV2MountIsFine()
    {
        Hybrid("\n");
        Assert.Null(CgroupLayout.HandlerProblem(_root, "crun version 1.21"));
    }

    [Fact]
    public void CrunOnAPureV2LayoutIsFine()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory hugetlb\n");
        Assert.Empty(CgroupLayout.HybridUnifiedControllers(_root));
        Assert.Null(CgroupLayout.HandlerProblem(_root, "crun version 1.21"));
    }
}
