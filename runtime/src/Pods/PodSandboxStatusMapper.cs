using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>A pod sandbox record as the CRI shows it: its state, PodSandboxStatus, the ListPodSandbox item. Writes nothing.</summary>
public static class PodSandboxStatusMapper
{
    /// <summary>Ready only while the infra process lives (this very process, this boot): a pod whose infra died needs re-creating.</summary>
    public static PodSandboxState StateOf(PodSandboxRecord record) =>
        record.Ready && record.IsInfraAlive() ? PodSandboxState.SandboxReady : PodSandboxState.SandboxNotready;

    public static PodSandboxStatus Status(PodSandboxRecord record)
    {
        var podConfig = record.ConfigMessage;
        var status = new PodSandboxStatus
        {
            Id = record.Id,
            Metadata = podConfig.Metadata,
            State = StateOf(record),
            CreatedAt = record.CreatedAtNanos,
            RuntimeHandler = record.RuntimeHandler,
            Network = new PodSandboxNetworkStatus { Ip = record.Ips.FirstOrDefault() ?? "" },
            Linux = new LinuxPodSandboxStatus
            {
                Namespaces = new Namespace { Options = podConfig.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption() },
            },
        };
        foreach (string ip in record.Ips.Skip(1)) status.Network.AdditionalIps.Add(new PodIP { Ip = ip });
        status.Labels.Add(podConfig.Labels);
        status.Annotations.Add(podConfig.Annotations);
        return status;
    }

    /// <summary>The ListPodSandbox and StreamPodSandboxes item: the status's summary fields.</summary>
    public static PodSandbox ListItem(PodSandboxRecord record)
    {
        var status = Status(record);
        var item = new PodSandbox
        {
            Id = status.Id,
            Metadata = status.Metadata,
            State = status.State,
            CreatedAt = status.CreatedAt,
            RuntimeHandler = status.RuntimeHandler,
        };
        item.Labels.Add(status.Labels);
        item.Annotations.Add(status.Annotations);
        return item;
    }
}
