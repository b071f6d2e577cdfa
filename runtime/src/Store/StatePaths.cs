using CriShim.Runtime.Config;

namespace CriShim.Runtime.Store;

/// <summary>Where the daemon keeps each kind of state, under the configured root and run root.</summary>
public sealed class StatePaths(StateConfig state)
{
    public string Pods => Path.Combine(state.Root, "pods");
    /// <summary>Container root filesystems (see OverlayRootfsService).</summary>
    public string Rootfs => Path.Combine(state.Root, "rootfs");
    public string Containers => Path.Combine(state.Root, "containers");
    /// <summary>A container's OCI bundle: its config.json, and conmon's pid, exit and attach files.</summary>
    public string ContainerBundle(string containerId) => Path.Combine(Containers, containerId, "bundle");
    /// <summary>The read-only rootfs of every pod's infra process: only catatonit.</summary>
    public string InfraRootfs => Path.Combine(state.Root, "infra-rootfs");
    public string ExitDir => Path.Combine(state.RunRoot, "exits");
    public string ConmonSockets => Path.Combine(state.RunRoot, "conmon");
    public string NetNs(string podId) => Path.Combine(state.RunRoot, "netns", podId);
    public string PodsRun => Path.Combine(state.RunRoot, "pods");
    public string PodRun(string podId) => Path.Combine(PodsRun, podId);
    /// <summary>Per-checkpoint work dirs for CRIU images: on the state disk, not tmpfs, as they can be as big as RAM.</summary>
    public string Checkpoints => Path.Combine(state.Root, "checkpoints");
    public string Exec => Path.Combine(state.RunRoot, "exec");

    public IReadOnlyList<string> Roots => [state.Root, state.RunRoot];

    /// <summary>
    /// The shared directories on the way to a user-namespaced pod's files, which the pod's root must search
    /// from inside its namespace: the roots, and below them only the parents of per-pod and per-container dirs.
    /// </summary>
    public IReadOnlyList<string> UserNamespaceTraversal => [.. Roots, Rootfs, Pods, Containers, PodsRun];
}
