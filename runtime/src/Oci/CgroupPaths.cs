namespace CriShim.Runtime.Oci;

/// <summary>The OCI linux.cgroupsPath of a pod's or container's cgroup, for either cgroup driver.</summary>
public static class CgroupPaths
{
    public static string For(string driver, string parent, string id) => driver == "systemd"
        // runc's systemd form: "<parent slice>:<prefix>:<unit name>".
        ? $"{(parent.Length > 0 ? Path.GetFileName(parent.TrimEnd('/')) : "system.slice")}:crishim:{id}"
        : $"{(parent.Length > 0 ? parent.TrimEnd('/') : "/crishim")}/crishim-{id}";

    /// <summary>A cgroup parent must be absolute for cgroupfs and a slice name for systemd.</summary>
    public static void Validate(string driver, string parent)
    {
        if (parent.Length == 0) return;
        if (parent.Contains("..", StringComparison.Ordinal))
        {
            throw new InvalidRequestException($"cgroup_parent \"{parent}\" must not contain \"..\"");
        }
        if (driver == "systemd" && !parent.EndsWith(".slice", StringComparison.Ordinal))
        {
            throw new InvalidRequestException($"cgroup_parent \"{parent}\" must be a systemd slice (name.slice) with the systemd cgroup driver");
        }
        if (driver != "systemd" && !parent.StartsWith('/'))
        {
            throw new InvalidRequestException($"cgroup_parent \"{parent}\" must be an absolute cgroup path with the cgroupfs driver");
        }
    }
}

/// <summary>
/// Without CAP_SYS_RESOURCE a process cannot lower oom_score_adj below its own, and runc then fails;
/// containerd's restrict_oom_score_adj clamps to the daemon's value instead.
/// </summary>
public static class OomScore
{
    private static readonly Lazy<int> DaemonScore = new(() =>
        int.TryParse(File.ReadAllText("/proc/self/oom_score_adj").Trim(), out int score) ? score : 0);

    public static int Clamp(long requested) => (int)Math.Clamp(requested, DaemonScore.Value, 1000);
}
