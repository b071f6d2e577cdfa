using CriShim.NativeInterop;

namespace CriShim.Runtime.Stats;

/// <summary>One cgroup's figures at one moment; a null figure is one the cgroup (or its controller) does not give.</summary>
public sealed record CgroupSample
{
    public ulong? CpuUsageNanos { get; init; }
    public ulong? MemoryUsageBytes { get; init; }
    public ulong? InactiveFileBytes { get; init; }
    public ulong? RssBytes { get; init; }
    public ulong? PageFaults { get; init; }
    public ulong? MajorPageFaults { get; init; }
    /// <summary>Null when the memory is not limited.</summary>
    public ulong? MemoryLimitBytes { get; init; }
    public ulong? SwapUsageBytes { get; init; }
    /// <summary>Null when swap is not limited.</summary>
    public ulong? SwapLimitBytes { get; init; }
    public ulong? ProcessCount { get; init; }

    /// <summary>What the kubelet evicts on: usage less the page cache the kernel can drop at once (as cadvisor and containerd count it).</summary>
    public ulong? WorkingSetBytes => MemoryUsageBytes is { } usage ? usage - Math.Min(usage, InactiveFileBytes ?? 0) : null;

    public ulong? AvailableBytes => MemoryLimitBytes is { } limit && WorkingSetBytes is { } workingSet ? limit - Math.Min(limit, workingSet) : null;

    public ulong? SwapAvailableBytes => SwapLimitBytes is { } limit && SwapUsageBytes is { } usage ? limit - Math.Min(limit, usage) : null;

    /// <summary>Several cgroups counted as one (a pod without a pod-level cgroup); limits do not add up, so there are none.</summary>
    public static CgroupSample Sum(IReadOnlyCollection<CgroupSample> samples) => new()
    {
        CpuUsageNanos = Add(samples, s => s.CpuUsageNanos),
        MemoryUsageBytes = Add(samples, s => s.MemoryUsageBytes),
        InactiveFileBytes = Add(samples, s => s.InactiveFileBytes),
        RssBytes = Add(samples, s => s.RssBytes),
        PageFaults = Add(samples, s => s.PageFaults),
        MajorPageFaults = Add(samples, s => s.MajorPageFaults),
        SwapUsageBytes = Add(samples, s => s.SwapUsageBytes),
        ProcessCount = Add(samples, s => s.ProcessCount),
    };

    private static ulong? Add(IReadOnlyCollection<CgroupSample> samples, Func<CgroupSample, ulong?> figure) =>
        samples.Select(figure).Where(v => v.HasValue).Aggregate((ulong?)null, (sum, v) => (sum ?? 0) + v);
}

/// <summary>
/// Reads cgroup figures on cgroup v1 (also the hybrid layout, whose v2 mount holds no controllers) and v2.
/// The roots are injectable so the parsers run on fake trees.
/// </summary>
public sealed class CgroupReader(string cgroupRoot = "/sys/fs/cgroup", string procRoot = "/proc")
{
    /// <summary>v1 reports "no limit" as the page counter maximum rounded to pages, not as a word.</summary>
    private const ulong V1Unlimited = 1UL << 62;

    public static CgroupReader Host { get; } = new();

    /// <summary>Only a pure v2 mount has cgroup.controllers at its root; hybrid hosts keep v2 under unified/, without controllers.</summary>
    private bool Unified => File.Exists(Path.Combine(cgroupRoot, "cgroup.controllers"));

    /// <summary>The figures of the cgroup <paramref name="pid"/> is in; null when the process is gone.</summary>
    public CgroupSample? ReadProcess(int pid)
    {
        if (CgroupsOf(pid) is not { } cgroups) return null;
        if (Unified) return cgroups.Unified is { } unified ? ReadV2(Path.Join(cgroupRoot, unified)) : null;
        return ReadV1(controller => cgroups.V1.TryGetValue(controller, out var found) ? Path.Join(found.Mount, found.Path) : null);
    }

    /// <summary>
    /// How many more bytes the memory cgroup of <paramref name="pid"/> may be charged before a limit stops it: the
    /// smallest limit less usage of its cgroup and of each ancestor up to the hierarchy's root (a parent's limit binds
    /// its children too). Null when none of them is limited, or the process or its memory cgroup is not found.
    /// </summary>
    public ulong? MemoryHeadroom(int pid)
    {
        if (CgroupsOf(pid) is not { } cgroups) return null;
        var (mount, path, limitFile, usageFile) = Unified
            ? (cgroupRoot, cgroups.Unified, "memory.max", "memory.current")
            : cgroups.V1.TryGetValue("memory", out var memory)
                ? (memory.Mount, memory.Path, "memory.limit_in_bytes", "memory.usage_in_bytes")
                : (cgroupRoot, null, "", "");
        if (path is null) return null;
        string[] levels = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        ulong? headroom = null;
        for (int depth = levels.Length; depth >= 0; depth--)
        {
            string directory = Path.Join(mount, string.Join('/', levels[..depth]));
            if (Limited(ReadNumber(directory, limitFile)) is not { } limit) continue;
            ulong left = limit - Math.Min(limit, ReadNumber(directory, usageFile) ?? 0);
            headroom = Math.Min(headroom ?? ulong.MaxValue, left);
        }
        return headroom;
    }

    /// <summary>The controllers read here; /proc/&lt;pid&gt;/cgroup names more, which are not looked up.</summary>
    private static readonly string[] V1Controllers = ["memory", "cpuacct", "pids"];

    /// <summary>Where a process's cgroups are: v2's path, and per v1 controller its hierarchy's mount and the path in it.</summary>
    private sealed record ProcessCgroups(string? Unified, Dictionary<string, (string Mount, string Path)> V1);

    /// <summary>The cgroups of <paramref name="pid"/> from /proc/&lt;pid&gt;/cgroup; null when the process is gone.</summary>
    private ProcessCgroups? CgroupsOf(int pid)
    {
        if (PseudoFiles.ReadText(Path.Combine(procRoot, pid.ToString(), "cgroup")) is not { } text) return null;
        var cgroups = new ProcessCgroups(null, []);
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // "hierarchy-id:controller,controller:path"; v2's line is "0::path".
            string[] fields = line.Split(':', 3);
            if (fields.Length != 3) continue;
            if (fields[0] == "0" && fields[1].Length == 0)
            {
                cgroups = cgroups with { Unified = fields[2] };
                continue;
            }
            foreach (string controller in fields[1].Split(','))
            {
                if (!V1Controllers.Contains(controller)) continue;
                // A co-mounted hierarchy ("cpu,cpuacct") usually has a symlink per controller; the joined name always exists.
                string mount = Directory.Exists(Path.Combine(cgroupRoot, controller)) ? controller : fields[1];
                cgroups.V1[controller] = (Path.Join(cgroupRoot, mount), fields[2]);
            }
        }
        return cgroups;
    }

    /// <summary>The figures of the cgroup at <paramref name="cgroupPath"/> (e.g. "/kubepods/burstable/pod1"); null when it does not exist.</summary>
    public CgroupSample? ReadPath(string cgroupPath)
    {
        if (Unified)
        {
            string directory = Path.Join(cgroupRoot, cgroupPath);
            return Directory.Exists(directory) ? ReadV2(directory) : null;
        }
        string memory = Path.Join(cgroupRoot, "memory", cgroupPath);
        return Directory.Exists(memory) ? ReadV1(controller => Path.Join(cgroupRoot, controller, cgroupPath)) : null;
    }

    /// <summary>
    /// The cgroup path of a pod's cgroup parent: as given for cgroupfs; for systemd a slice name, which
    /// lives nested under each of its dash-separated prefixes (kubepods-burstable-pod1.slice is
    /// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice).
    /// </summary>
    public static string PodCgroupPath(string driver, string cgroupParent)
    {
        if (driver != "systemd") return cgroupParent;
        const string suffix = ".slice";
        if (cgroupParent == "-" + suffix) return "/";
        string name = cgroupParent.EndsWith(suffix, StringComparison.Ordinal) ? cgroupParent[..^suffix.Length] : cgroupParent;
        string[] parts = name.Split('-');
        var path = new System.Text.StringBuilder();
        for (int i = 1; i <= parts.Length; i++) path.Append('/').Append(string.Join('-', parts[..i])).Append(suffix);
        return path.ToString();
    }

    private static CgroupSample ReadV1(Func<string, string?> controllerDirectory)
    {
        string? memory = controllerDirectory("memory");
        var stat = ReadKeyedFile(memory, "memory.stat");
        ulong? usage = ReadNumber(memory, "memory.usage_in_bytes");
        ulong? limit = Limited(ReadNumber(memory, "memory.limit_in_bytes"));
        // memsw counts memory plus swap; it exists only with swap accounting on.
        ulong? memoryAndSwap = ReadNumber(memory, "memory.memsw.usage_in_bytes");
        ulong? memoryAndSwapLimit = Limited(ReadNumber(memory, "memory.memsw.limit_in_bytes"));
        return new CgroupSample
        {
            CpuUsageNanos = ReadNumber(controllerDirectory("cpuacct"), "cpuacct.usage"),
            MemoryUsageBytes = usage,
            InactiveFileBytes = stat.GetValueOrDefault("total_inactive_file"),
            RssBytes = stat.GetValueOrDefault("total_rss"),
            PageFaults = stat.GetValueOrDefault("total_pgfault"),
            MajorPageFaults = stat.GetValueOrDefault("total_pgmajfault"),
            MemoryLimitBytes = limit,
            SwapUsageBytes = memoryAndSwap is { } both && usage is { } used ? both - Math.Min(both, used) : null,
            SwapLimitBytes = memoryAndSwapLimit is { } bothLimit && limit is { } memoryLimit ? bothLimit - Math.Min(bothLimit, memoryLimit) : null,
            ProcessCount = ReadNumber(controllerDirectory("pids"), "pids.current"),
        };
    }

    private static CgroupSample ReadV2(string directory)
    {
        var memoryStat = ReadKeyedFile(directory, "memory.stat");
        var cpuStat = ReadKeyedFile(directory, "cpu.stat");
        return new CgroupSample
        {
            CpuUsageNanos = cpuStat.GetValueOrDefault("usage_usec") * 1000,
            MemoryUsageBytes = ReadNumber(directory, "memory.current"),
            InactiveFileBytes = memoryStat.GetValueOrDefault("inactive_file"),
            RssBytes = memoryStat.GetValueOrDefault("anon"),
            PageFaults = memoryStat.GetValueOrDefault("pgfault"),
            MajorPageFaults = memoryStat.GetValueOrDefault("pgmajfault"),
            MemoryLimitBytes = ReadNumber(directory, "memory.max"),
            SwapUsageBytes = ReadNumber(directory, "memory.swap.current"),
            SwapLimitBytes = ReadNumber(directory, "memory.swap.max"),
            ProcessCount = ReadNumber(directory, "pids.current"),
        };
    }

    private static ulong? Limited(ulong? limit) => limit >= V1Unlimited ? null : limit;

    /// <summary>A one-number file; null when absent (cgroup gone, controller off) or "max".</summary>
    private static ulong? ReadNumber(string? directory, string file) =>
        ReadText(directory, file) is { } text && ulong.TryParse(text.Trim(), out ulong value) ? value : null;

    /// <summary>A "key value" per line file (memory.stat, cpu.stat); empty when absent.</summary>
    private static Dictionary<string, ulong?> ReadKeyedFile(string? directory, string file)
    {
        var values = new Dictionary<string, ulong?>();
        foreach (string line in (ReadText(directory, file) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] pair = line.Split(' ', 2);
            if (pair.Length == 2 && ulong.TryParse(pair[1].Trim(), out ulong value)) values[pair[0]] = value;
        }
        return values;
    }

    /// <summary>Null also when the cgroup went away between finding and reading it: an exited container.</summary>
    private static string? ReadText(string? directory, string file) =>
        directory is null ? null : PseudoFiles.ReadText(Path.Combine(directory, file));
}
