using System.Text.Json.Nodes;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>
/// The pod's infra process: catatonit from the host (static), in a read-only rootfs holding only it.
/// It creates the pod's IPC, UTS and (when shared) PID namespaces, which every container then joins;
/// no pause image is pulled, so a pod starts offline.
/// </summary>
public static class InfraSpec
{
    public const string CatatonitHostPath = "/usr/bin/catatonit";

    /// <summary>Creates the shared infra rootfs once: empty mount points and catatonit.</summary>
    public static void EnsureRootfs(string rootfs)
    {
        // The infra container's "/", 0755: its unprivileged process runs /catatonit, and the OCI runtime of a
        // user-namespaced pod opens it as nobody. Set each time, as start-up closes the top-level state dirs.
        // It holds nothing but empty mount points and a read-only copy of a host binary.
        const UnixFileMode rootfsMode = StateDirectory.Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
            UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        StateDirectory.Create(rootfs, rootfsMode);
        File.SetUnixFileMode(rootfs, rootfsMode);
        string binary = Path.Combine(rootfs, "catatonit");
        if (File.Exists(binary)) return;
        foreach (string dir in new[] { "proc", "dev", "sys", "etc", "tmp" })
        {
            StateDirectory.Create(Path.Combine(rootfs, dir), rootfsMode);
        }
        // Pods start concurrently: each writes its own temp file and renames it, so a racing copy never
        // sees a half-written binary or another's temp file.
        AtomicFile.Write(binary, File.ReadAllBytes(CatatonitHostPath), UnixFileMode.UserRead | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
    }

    public static JsonObject Build(PodSandboxRecord pod, string rootfs, string cgroupsPath, int oomScoreAdj)
    {
        var config = pod.ConfigMessage;
        var ns = config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        var namespaces = new JsonArray(new JsonObject { ["type"] = "mount" });
        var userns = PodUserNamespace.Of(config);
        // A pod user namespace must own the pod's network namespace (or containers could not join it nor
        // mount sysfs), so the infra process creates it there and the daemon pins it afterwards, as containerd does.
        bool podNetwork = userns is not null || pod.NetNsPath.Length > 0;
        if (podNetwork)
        {
            namespaces.Add((JsonNode)(userns is null
                ? new JsonObject { ["type"] = "network", ["path"] = pod.NetNsPath }
                : new JsonObject { ["type"] = "network" }));
            namespaces.Add((JsonNode)new JsonObject { ["type"] = "uts" });
        }
        if (ns.Ipc != NamespaceMode.Node) namespaces.Add((JsonNode)new JsonObject { ["type"] = "ipc" });
        if (ns.Pid != NamespaceMode.Node) namespaces.Add((JsonNode)new JsonObject { ["type"] = "pid" });

        var sysctls = new JsonObject();
        foreach (var (key, value) in config.Linux?.Sysctls ?? new Google.Protobuf.Collections.MapField<string, string>())
        {
            sysctls[key] = value;
        }
        var linux = new JsonObject
        {
            ["cgroupsPath"] = cgroupsPath,
            ["namespaces"] = namespaces,
            ["sysctl"] = sysctls,
            ["resources"] = new JsonObject
            {
                ["devices"] = new JsonArray(new JsonObject { ["allow"] = false, ["access"] = "rwm" }),
                ["cpu"] = new JsonObject { ["shares"] = 2 },
            },
            ["maskedPaths"] = SpecDefaults.Strings(SpecDefaults.MaskedPaths),
            ["readonlyPaths"] = SpecDefaults.Strings(SpecDefaults.ReadonlyPaths),
        };
        userns?.AddTo(linux, namespaces, path: null);
        return new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["terminal"] = false,
                ["user"] = new JsonObject { ["uid"] = 65535, ["gid"] = 65535 },
                ["args"] = new JsonArray("/catatonit", "-P"),
                ["env"] = new JsonArray("PATH=/"),
                ["cwd"] = "/",
                ["capabilities"] = new JsonObject(),
                ["noNewPrivileges"] = true,
                ["oomScoreAdj"] = oomScoreAdj,
            },
            ["root"] = new JsonObject { ["path"] = rootfs, ["readonly"] = true },
            ["hostname"] = podNetwork ? config.Hostname : null,
            ["mounts"] = new JsonArray(
                SpecDefaults.Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
                SpecDefaults.Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k")),
            ["annotations"] = new JsonObject
            {
                ["io.kubernetes.cri.container-type"] = "sandbox",
                ["io.kubernetes.cri.sandbox-id"] = pod.Id,
            },
            ["linux"] = linux,
        };
    }
}
