using CriShim.Runtime.Store;

namespace CriShim.Runtime.Containers;

/// <summary>
/// One lock per container: its lifecycle calls, resource updates, checkpoints and the exit watcher's
/// reconcile are serialised. Taken after the pod's lock (<see cref="Pods.PodLocks"/>) when both are needed.
/// </summary>
public sealed class ContainerLocks
{
    private readonly KeyedLock _locks = new();

    public Task<IDisposable> AcquireAsync(string containerId, CancellationToken cancellationToken) => _locks.AcquireAsync(containerId, cancellationToken);
}
