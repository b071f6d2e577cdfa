using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Events;

/// <summary>
/// Turns a lifecycle step into the event GetContainerEvents sends: the container's id and, as
/// containerd does, the pod's PodSandboxStatus and the ContainerStatus of each of its containers at
/// that moment. A pod's own steps use the pod id as the container id.
/// </summary>
public sealed class ContainerEventPublisher(
    ContainerEventBus bus,
    TimeProvider time,
    RecordStore<PodSandboxRecord> pods,
    RecordStore<ContainerRecord> containers)
{
    /// <param name="podStatus">For a pod already removed: its last status (containerd would send none, and the kubelet ignores such events).</param>
    public void Publish(ContainerEventType type, string containerId, string podId, PodSandboxStatus? podStatus = null)
    {
        var containerEvent = new ContainerEventResponse
        {
            ContainerId = containerId,
            ContainerEventType = type,
            CreatedAt = time.Now(),
            PodSandboxStatus = podStatus ?? (pods.Get(podId) is { } pod ? PodSandboxStatusMapper.Status(pod) : null),
        };
        containerEvent.ContainersStatuses.Add(containers.All.Where(c => c.PodId == podId).Select(ContainerStatusMapper.Status));
        bus.Publish(containerEvent);
    }
}
