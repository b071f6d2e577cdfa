namespace CriShim.Runtime.Daemon;

/// <summary>What the host's cgroup layout allows the OCI runtimes, checked at start-up for Status.</summary>
public static class CgroupLayout
{
    public const string Root = "/sys/fs/cgroup";

    /// <summary>
    /// Controllers enabled on the v2 side of a hybrid layout (v1 hierarchies plus a v2 mount at unified/);
    /// none on a pure v1 or pure v2 host.
    /// </summary>
    public static IReadOnlyList<string> HybridUnifiedControllers(string cgroupRoot)
    {
        string controllers = Path.Join(cgroupRoot, "unified", "cgroup.controllers");
        return File.Exists(controllers)
            ? File.ReadAllText(controllers).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
    }

    /// <summary>
    /// Why the handler whose `--version` starts with <paramref name="version"/> cannot run containers on this
    /// layout, with the fix; null when it can. crun refuses a hybrid layout whose v2 mount holds any controller
    /// (runc does not): the daemon says so rather than change the host's mounts itself.
    /// </summary>
    public static string? HandlerProblem(string cgroupRoot, string version)
    {
        if (!version.StartsWith("crun", StringComparison.Ordinal)) return null;
        var controllers = HybridUnifiedControllers(cgroupRoot);
        if (controllers.Count == 0) return null;
        string unified = Path.Join(cgroupRoot, "unified");
        return $"crun cannot run containers on this host's cgroup layout: it is hybrid (v1 hierarchies plus {unified}) and the v2 mount " +
            $"holds the controller(s) {string.Join(", ", controllers)} (crun: \"cgroups in hybrid mode not supported\"); " +
            $"fix: move each to a v1 hierarchy of its own ({string.Join("; ", controllers.Select(c => $"mkdir -p {cgroupRoot}/{c} && mount -t cgroup -o {c} cgroup {cgroupRoot}/{c}"))}), " +
            "boot with a pure cgroup v2 layout (systemd.unified_cgroup_hierarchy=1), or use the runc handler";
    }
}
