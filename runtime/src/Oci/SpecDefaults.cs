using System.Text.Json.Nodes;

namespace CriShim.Runtime.Oci;

/// <summary>The values every container spec starts from, as containerd and CRI-O use them.</summary>
public static class SpecDefaults
{
    public static readonly string[] Capabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    /// <summary>Every capability the kernel knows, indexed by its number.</summary>
    public static readonly string[] KnownCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    /// <summary>
    /// What privileged containers and "ALL" get: the daemon's own bounding set, as containerd's
    /// WithAllCurrentCapabilities does. A capability the daemon lacks (CAP_SYS_RESOURCE on some hosts)
    /// cannot be granted, and asking runc for it fails the whole container.
    /// </summary>
    public static IReadOnlyList<string> AllCapabilities => DaemonBoundingSet.Value;

    private static readonly Lazy<string[]> DaemonBoundingSet = new(() => FromMask(ReadStatusMask("/proc/self/status", "CapBnd")));

    public static string[] FromMask(ulong mask) =>
        [.. KnownCapabilities.Where((_, number) => (mask & (1UL << number)) != 0)];

    private static ulong ReadStatusMask(string statusFile, string field)
    {
        string prefix = field + ":";
        string? line = File.ReadLines(statusFile).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? ulong.MaxValue : Convert.ToUInt64(line[prefix.Length..].Trim(), 16);
    }

    public static readonly string[] MaskedPaths =
    [
        "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ];

    public static readonly string[] ReadonlyPaths =
    [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ];

    /// <summary>Syscalls the RuntimeDefault profile refuses with EPERM: the ones that reach across
    /// the container boundary (kernel modules, clocks, mounts, namespaces, keyrings, tracing, BPF).</summary>
    public static readonly string[] RuntimeDefaultDeniedSyscalls =
    [
        "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp",
        "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
        "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
        "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot",
        "request_key", "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2",
        "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
    ];

    public static JsonObject RuntimeDefaultSeccomp() => new()
    {
        ["defaultAction"] = "SCMP_ACT_ALLOW",
        ["architectures"] = new JsonArray("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        ["syscalls"] = new JsonArray(new JsonObject
        {
            ["names"] = Strings(RuntimeDefaultDeniedSyscalls),
            ["action"] = "SCMP_ACT_ERRNO",
            ["errnoRet"] = 1,
        }),
    };

    public static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray());

    /// <summary>
    /// Mount destinations every container gets from the runtime or the kubelet's pod files: a checkpoint's
    /// bind.mounts leaves them out, and a restore does not ask the request to repeat them (CRI-O ignores the same).
    /// </summary>
    public static readonly IReadOnlySet<string> SystemMountDestinations = new HashSet<string>(StringComparer.Ordinal)
    {
        "/proc", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm", "/dev/termination-log", "/sys", "/sys/fs/cgroup",
        "/run", "/run/secrets", "/run/.containerenv", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/etc/passwd", "/etc/group",
    };

    /// <summary>The kernel filesystems every Linux container gets.</summary>
    public static JsonArray BaseMounts(bool readOnlySys) => new(
        Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        Mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        Mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        Mount("/sys", "sysfs", "sysfs", readOnlySys ? ["nosuid", "noexec", "nodev", "ro"] : ["nosuid", "noexec", "nodev"]),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", readOnlySys ? ["nosuid", "noexec", "nodev", "relatime", "ro"] : ["nosuid", "noexec", "nodev", "relatime"]));

    public static JsonObject Mount(string destination, string type, string source, params string[] options) => new()
    {
        ["destination"] = destination,
        ["type"] = type,
        ["source"] = source,
        ["options"] = Strings(options),
    };

    public static JsonObject BindMount(string destination, string source, bool readOnly, string propagation = "rprivate",
        bool recursiveReadOnly = false)
    {
        var options = new List<string> { "rbind", propagation };
        if (readOnly) options.Add("ro");
        if (recursiveReadOnly) options.Add("rro");
        return Mount(destination, "bind", source, [.. options]);
    }
}
