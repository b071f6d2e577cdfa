using CriShim.Runtime.Store;

namespace CriShim.Runtime.Pods;

/// <summary>
/// One lock per pod, shared by the pod and container services: pod lifecycle calls and CreateContainer
/// in that pod are serialised, so RemovePodSandbox cannot race a create into an orphan container.
/// Taken before any container lock of the pod.
/// </summary>
public sealed class PodLocks
{
    private readonly KeyedLock _locks = new();

    public Task<IDisposable> AcquireAsync(string podId, CancellationToken cancellationToken) => _locks.AcquireAsync(podId, cancellationToken);
}
