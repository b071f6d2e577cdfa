using CriShim.Runtime.Config;

namespace CriShim.Runtime.Store;

/// <summary>Where the daemon keeps each kind of state, under the configured root and run root.</summary>
public sealed class StatePaths(CriShimConfig config)
{
    public string Pods => Path.Combine(config.State.Root, "pods");
    /// <summary>Container root filesystems (see OverlayRootfsService).</summary>
    public string Rootfs => Path.Combine(config.State.Root, "rootfs");
    public string Containers => Path.Combine(config.State.Root, "containers");
    /// <summary>A container's OCI bundle: its config.json, and conmon's pid, exit and attach files.</summary>
    public string ContainerBundle(string containerId) => Path.Combine(Containers, containerId, "bundle");
    /// <summary>The read-only rootfs of every pod's infra process: only catatonit.</summary>
    public string InfraRootfs => Path.Combine(config.State.Root, "infra-rootfs");
    public string ExitDir => Path.Combine(config.State.RunRoot, "exits");
    public string ConmonSockets => Path.Combine(config.State.RunRoot, "conmon");
    public string NetNs(string podId) => Path.Combine(config.State.RunRoot, "netns", podId);
    public string PodsRun => Path.Combine(config.State.RunRoot, "pods");
    public string PodRun(string podId) => Path.Combine(PodsRun, podId);
    /// <summary>Per-checkpoint work dirs for CRIU images: on the state disk, not tmpfs, as they can be as big as RAM.</summary>
    public string Checkpoints => Path.Combine(config.State.Root, "checkpoints");
    public string Exec => Path.Combine(config.State.RunRoot, "exec");

    public IReadOnlyList<string> Roots => [config.State.Root, config.State.RunRoot];

    /// <summary>
    /// The shared directories on the way to a user-namespaced pod's files, which the pod's root must search
    /// from inside its namespace: the roots, and below them only the parents of per-pod and per-container dirs.
    /// </summary>
    public IReadOnlyList<string> UserNamespaceTraversal => [.. Roots, Rootfs, Pods, Containers, PodsRun];
}
