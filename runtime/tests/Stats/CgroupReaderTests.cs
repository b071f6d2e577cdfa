using CriShim.Runtime.Stats;

namespace CriShim.Runtime.Tests.Stats;

/// <summary>The cgroup parsers on fake /sys/fs/cgroup and /proc trees.</summary>
public sealed class CgroupReaderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-cgroup-").FullName;
    private string CgroupRoot => Path.Combine(_root, "cgroup");
    private string ProcRoot => Path.Combine(_root, "proc");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string relative, string text)
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    private CgroupReader Reader => new(CgroupRoot, ProcRoot);

    /// <summary>The hybrid layout of this project's hosts: v1 controllers, and a v2 mount under unified/ with none.</summary>
    private void HybridV1Container(string path, string cpuacctMount = "cpuacct")
    {
        Write("proc/42/cgroup", $"""
            12:pids:{path}
            4:memory:{path}
            2:{cpuacctMount}:{path}
            1:name=systemd:/
            0::{path}
            """);
        Write($"cgroup/unified/cgroup.procs", "");
        Write($"cgroup/{cpuacctMount}{path}/cpuacct.usage", "1500000000\n");
        Write($"cgroup/memory{path}/memory.usage_in_bytes", "104857600\n");
        Write($"cgroup/memory{path}/memory.limit_in_bytes", "268435456\n");
        Write($"cgroup/memory{path}/memory.stat", """
            cache 8
            rss 1
            total_cache 41943040
            total_rss 52428800
            total_inactive_file 20971520
            total_pgfault 1234
            total_pgmajfault 7
            """);
        Write($"cgroup/pids{path}/pids.current", "3\n");
    }

    [Fact]
    public void V1FiguresComeFromEachControllersHierarchy()
    {
        HybridV1Container("/crishim/crishim-c1");

        var sample = Reader.ReadProcess(42)!;

        Assert.Equal(1_500_000_000UL, sample.CpuUsageNanos);
        Assert.Equal(100UL << 20, sample.MemoryUsageBytes);
        Assert.Equal(80UL << 20, sample.WorkingSetBytes);
        Assert.Equal(50UL << 20, sample.RssBytes);
        Assert.Equal(1234UL, sample.PageFaults);
        Assert.Equal(7UL, sample.MajorPageFaults);
        Assert.Equal(256UL << 20, sample.MemoryLimitBytes);
        Assert.Equal((256UL - 80) << 20, sample.AvailableBytes);
        Assert.Equal(3UL, sample.ProcessCount);
        // Without swap accounting there is no memsw file, so no swap figure.
        Assert.Null(sample.SwapUsageBytes);
    }

    [Fact]
    public void V1UnlimitedMemoryHasNoLimitAndSwapComesFromMemsw()
    {
        HybridV1Container("/c");
        Write("cgroup/memory/c/memory.limit_in_bytes", "9223372036854771712\n");
        Write("cgroup/memory/c/memory.memsw.usage_in_bytes", $"{(100 << 20) + 4096}\n");
        Write("cgroup/memory/c/memory.memsw.limit_in_bytes", "9223372036854771712\n");

        var sample = Reader.ReadProcess(42)!;

        Assert.Null(sample.MemoryLimitBytes);
        Assert.Null(sample.AvailableBytes);
        Assert.Equal(4096UL, sample.SwapUsageBytes);
        Assert.Null(sample.SwapAvailableBytes);
    }

    [Fact]
    public void ACoMountedHierarchyWithoutPerControllerLinksIsFoundByItsJoinedName()
    {
        HybridV1Container("/c", cpuacctMount: "cpu,cpuacct");

        Assert.Equal(1_500_000_000UL, Reader.ReadProcess(42)!.CpuUsageNanos);
    }

    [Fact]
    public void V2FiguresComeFromTheOneUnifiedDirectory()
    {
        Write("cgroup/cgroup.controllers", "cpu memory pids\n");
        Write("proc/7/cgroup", "0::/kubepods.slice/crishim-c2.scope\n");
        const string dir = "cgroup/kubepods.slice/crishim-c2.scope";
        Write($"{dir}/cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
        Write($"{dir}/memory.current", "73400320\n");
        Write($"{dir}/memory.max", "max\n");
        Write($"{dir}/memory.stat", "anon 41943040\nfile 31457280\ninactive_file 10485760\npgfault 99\npgmajfault 2\n");
        Write($"{dir}/memory.swap.current", "8192\n");
        Write($"{dir}/memory.swap.max", "1048576\n");
        Write($"{dir}/pids.current", "5\n");

        var sample = Reader.ReadProcess(7)!;

        Assert.Equal(2_500_000UL, sample.CpuUsageNanos);
        Assert.Equal(70UL << 20, sample.MemoryUsageBytes);
        Assert.Equal(60UL << 20, sample.WorkingSetBytes);
        Assert.Equal(40UL << 20, sample.RssBytes);
        Assert.Equal(99UL, sample.PageFaults);
        Assert.Equal(2UL, sample.MajorPageFaults);
        Assert.Null(sample.MemoryLimitBytes);
        Assert.Equal(8192UL, sample.SwapUsageBytes);
        Assert.Equal(1048576UL - 8192, sample.SwapAvailableBytes);
        Assert.Equal(5UL, sample.ProcessCount);
    }

    [Fact]
    public void AGoneProcessOrCgroupReadsAsNothing()
    {
        Assert.Null(Reader.ReadProcess(999));
        Write("cgroup/memory/.keep", "");
        Assert.Null(Reader.ReadPath("/kubepods/pod-gone"));
        Write("cgroup/cgroup.controllers", "");
        Assert.Null(Reader.ReadPath("/kubepods.slice/gone.slice"));
    }

    [Fact]
    public void WorkingSetNeverGoesBelowZero()
    {
        var sample = new CgroupSample { MemoryUsageBytes = 10, InactiveFileBytes = 20, MemoryLimitBytes = 5 };
        Assert.Equal(0UL, sample.WorkingSetBytes);
        Assert.Equal(5UL, sample.AvailableBytes);
    }

    [Fact]
    public void APodCgroupParentIsReadByPathOnV1AndV2()
    {
        Write("cgroup/memory/kubepods/burstable/pod1/memory.usage_in_bytes", "4096\n");
        Write("cgroup/pids/kubepods/burstable/pod1/pids.current", "2\n");
        var v1 = Reader.ReadPath("/kubepods/burstable/pod1")!;
        Assert.Equal(4096UL, v1.MemoryUsageBytes);
        Assert.Equal(2UL, v1.ProcessCount);

        Write("cgroup/cgroup.controllers", "memory pids\n");
        Write("cgroup/kubepods.slice/kubepods-pod2.slice/pids.current", "4\n");
        Assert.Equal(4UL, Reader.ReadPath("/kubepods.slice/kubepods-pod2.slice")!.ProcessCount);
    }

    [Theory]
    [InlineData("cgroupfs", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1")]
    [InlineData("systemd", "kubepods-burstable-pod1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice")]
    [InlineData("systemd", "system.slice", "/system.slice")]
    [InlineData("systemd", "-.slice", "/")]
    public void APodCgroupParentMapsToItsCgroupPath(string driver, string parent, string expected) =>
        Assert.Equal(expected, CgroupReader.PodCgroupPath(driver, parent));

    [Fact]
    public void CgroupsCountedTogetherAddUpAndHaveNoLimit()
    {
        var sum = CgroupSample.Sum([
            new CgroupSample { CpuUsageNanos = 10, MemoryUsageBytes = 100, InactiveFileBytes = 10, ProcessCount = 1, MemoryLimitBytes = 1000 },
            new CgroupSample { CpuUsageNanos = 5, MemoryUsageBytes = 50, ProcessCount = 2 },
        ]);
        Assert.Equal(15UL, sum.CpuUsageNanos);
        Assert.Equal(150UL, sum.MemoryUsageBytes);
        Assert.Equal(140UL, sum.WorkingSetBytes);
        Assert.Equal(3UL, sum.ProcessCount);
        Assert.Null(sum.MemoryLimitBytes);
        Assert.Null(sum.SwapUsageBytes);
    }

    private const string V1Unlimited = "9223372036854771712\n";

    /// <summary>A daemon in /system.slice/crishim.service on v1, its memory cgroup's and its parent's limit and usage as given.</summary>
    private void V1Daemon(string serviceLimit, ulong serviceUsage, string sliceLimit, ulong sliceUsage)
    {
        Write("proc/42/cgroup", "4:memory:/system.slice/crishim.service\n3:cpu,cpuacct:/system.slice/crishim.service\n0::/system.slice/crishim.service\n");
        Write("cgroup/unified/cgroup.procs", "");
        Write("cgroup/memory/memory.limit_in_bytes", V1Unlimited);
        Write("cgroup/memory/memory.usage_in_bytes", "17179869184\n");
        Write("cgroup/memory/system.slice/memory.limit_in_bytes", sliceLimit);
        Write("cgroup/memory/system.slice/memory.usage_in_bytes", $"{sliceUsage}\n");
        Write("cgroup/memory/system.slice/crishim.service/memory.limit_in_bytes", serviceLimit);
        Write("cgroup/memory/system.slice/crishim.service/memory.usage_in_bytes", $"{serviceUsage}\n");
    }

    [Fact]
    public void V1MemoryHeadroomIsTheLimitLessTheUsageOfTheProcesssCgroup()
    {
        V1Daemon(serviceLimit: "1073741824\n", serviceUsage: 100 << 20, sliceLimit: V1Unlimited, sliceUsage: 3UL << 30);

        Assert.Equal((1UL << 30) - (100 << 20), Reader.MemoryHeadroom(42));
    }

    [Fact]
    public void AnAncestorsTighterLimitBindsTheProcessToo()
    {
        V1Daemon(serviceLimit: V1Unlimited, serviceUsage: 100 << 20, sliceLimit: "2147483648\n", sliceUsage: (2UL << 30) - (300 << 20));

        Assert.Equal(300UL << 20, Reader.MemoryHeadroom(42));
    }

    [Fact]
    public void NoLimitAnywhereIsNoHeadroomFigure()
    {
        V1Daemon(serviceLimit: V1Unlimited, serviceUsage: 100 << 20, sliceLimit: V1Unlimited, sliceUsage: 3UL << 30);

        Assert.Null(Reader.MemoryHeadroom(42));
        Assert.Null(Reader.MemoryHeadroom(999));
    }

    [Fact]
    public void V2MemoryHeadroomReadsMemoryMaxAndCurrentUpTheTree()
    {
        Write("cgroup/cgroup.controllers", "cpu memory pids\n");
        Write("proc/7/cgroup", "0::/system.slice/crishim.service\n");
        Write("cgroup/system.slice/memory.max", "max\n");
        Write("cgroup/system.slice/memory.current", "4294967296\n");
        Write("cgroup/system.slice/crishim.service/memory.max", "536870912\n");
        Write("cgroup/system.slice/crishim.service/memory.current", "134217728\n");

        Assert.Equal(384UL << 20, Reader.MemoryHeadroom(7));

        Write("cgroup/system.slice/crishim.service/memory.max", "max\n");
        Assert.Null(Reader.MemoryHeadroom(7));

        // Usage past the limit (memory.high/max raced by a charge) leaves no room, not a wrapped-around figure.
        Write("cgroup/system.slice/crishim.service/memory.max", "100\n");
        Assert.Equal(0UL, Reader.MemoryHeadroom(7));
    }
}
