using CriShim.Runtime.Config;

namespace CriShim.Runtime.Store;

/// <summary>Where the daemon keeps each kind of state, under the configured root and run root.</summary>
public sealed class StatePaths(CriShimConfig config)
{
    public string Pods => Path.Combine(config.State.Root, "pods");
    public string Containers => Path.Combine(config.State.Root, "containers");
    /// <summary>The read-only rootfs of every pod's infra process: only catatonit.</summary>
    public string InfraRootfs => Path.Combine(config.State.Root, "infra-rootfs");
    public string ExitDir => Path.Combine(config.State.RunRoot, "exits");
    public string ConmonSockets => Path.Combine(config.State.RunRoot, "conmon");
    public string NetNs(string podId) => Path.Combine(config.State.RunRoot, "netns", podId);
    public string PodRun(string podId) => Path.Combine(config.State.RunRoot, "pods", podId);
    /// <summary>Per-checkpoint work dirs for CRIU images: on the state disk, not tmpfs, as they can be as big as RAM.</summary>
    public string Checkpoints => Path.Combine(config.State.Root, "checkpoints");
    public string Exec => Path.Combine(config.State.RunRoot, "exec");
}
