using CriShim.Runtime.Pods;
using Runtime.V1;

namespace CriShim.Runtime.Network;

/// <summary>Connects pod network namespaces to the node's pod network (CNI) and reports whether it can.</summary>
public interface IPodNetwork
{
    /// <summary>Attaches the pod's pinned network namespace; returns its IPs, the primary first.
    /// On failure nothing of the attachment is left behind.</summary>
    Task<IReadOnlyList<string>> AttachAsync(PodSandboxRecord pod, CancellationToken cancellationToken);

    /// <summary>Releases what <see cref="AttachAsync"/> set up; idempotent, also after a half-done attach.</summary>
    Task DetachAsync(PodSandboxRecord pod, CancellationToken cancellationToken);

    /// <summary>The NetworkReady condition for Status.</summary>
    RuntimeCondition Readiness();
}
