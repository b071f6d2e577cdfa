using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>
/// A container record as the CRI shows it: ContainerStatus, the ListContainers item. Pure: it reads the
/// record and nothing else, so a status or an event never writes anything.
/// </summary>
public static class ContainerStatusMapper
{
    /// <summary>ContainerStatus annotations of a container created from a checkpoint.</summary>
    public const string RestoredAnnotation = "io.crishim.restored";
    public const string RestoredFromAnnotation = "io.crishim.restored-from";

    public static ContainerStatus Status(ContainerRecord record)
    {
        var containerConfig = record.ConfigMessage;
        var status = new ContainerStatus
        {
            Id = record.Id,
            Metadata = containerConfig.Metadata,
            State = record.State,
            CreatedAt = record.CreatedAtNanos,
            StartedAt = record.StartedAtNanos,
            FinishedAt = record.FinishedAtNanos,
            ExitCode = record.ExitCode,
            Image = new ImageSpec { Image = record.ImageName, UserSpecifiedImage = record.ImageName },
            ImageRef = record.ImageRef,
            ImageId = record.ImageId,
            Reason = record.Reason,
            Message = record.Message,
            LogPath = record.LogPath,
            Resources = new ContainerResources { Linux = LinuxContainerResources.Parser.ParseFrom(record.Resources) },
        };
        status.Labels.Add(containerConfig.Labels);
        status.Annotations.Add(containerConfig.Annotations);
        if (record.Restore is { } restore)
        {
            status.Annotations[RestoredAnnotation] = "true";
            status.Annotations[RestoredFromAnnotation] = restore.Archive;
        }
        foreach (var mount in containerConfig.Mounts) status.Mounts.Add(mount);
        if (record.User is { } user)
        {
            status.User = new ContainerUser
            {
                Linux = new LinuxContainerUser { Uid = user.Uid, Gid = user.Gid, SupplementalGroups = { user.SupplementalGroups } },
            };
        }
        return status;
    }

    /// <summary>The ListContainers and StreamContainers item: the status's summary fields.</summary>
    public static Container ListItem(ContainerRecord record)
    {
        var status = Status(record);
        var item = new Container
        {
            Id = status.Id,
            PodSandboxId = record.PodId,
            Metadata = status.Metadata,
            Image = status.Image,
            ImageRef = status.ImageRef,
            ImageId = status.ImageId,
            State = status.State,
            CreatedAt = status.CreatedAt,
        };
        item.Labels.Add(status.Labels);
        item.Annotations.Add(status.Annotations);
        return item;
    }

    /// <summary>The state in words, for error messages.</summary>
    public static string Describe(ContainerState state) => state switch
    {
        ContainerState.ContainerCreated => "created",
        ContainerState.ContainerRunning => "running",
        ContainerState.ContainerExited => "exited",
        _ => "in an unknown state",
    };
}
