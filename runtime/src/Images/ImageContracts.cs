namespace CriShim.Runtime.Images;

/// <summary>The parts of an image's config that containers are created from.</summary>
public sealed record ImageRuntimeConfig(
    IReadOnlyList<string> Entrypoint,
    IReadOnlyList<string> Cmd,
    IReadOnlyList<string> Env,
    string WorkingDir,
    string User,
    string StopSignal,
    IReadOnlyList<string> Volumes,
    IReadOnlyDictionary<string, string> Labels);

/// <summary>An image in the store, as the container service and the CRI see it.</summary>
public sealed record StoredImage(
    string Id,
    IReadOnlyList<string> RepoTags,
    IReadOnlyList<string> RepoDigests,
    ulong Size,
    ImageRuntimeConfig Config,
    bool Pinned,
    IReadOnlyDictionary<string, string> Annotations);

/// <summary>One path that differs between a container's writable layer and its image.</summary>
public sealed record RootfsChange(string Path, RootfsChangeKind Kind);

public enum RootfsChangeKind
{
    Added,
    Modified,
    Deleted,
}

/// <summary>Looks images up by any name the CRI allows: tag, digest reference, full id or unique id prefix.</summary>
public interface IImageLookup
{
    StoredImage? Find(string reference);
}

/// <summary>Tells the image service which images containers still use, so RemoveImage can refuse.</summary>
public interface IImageUsage
{
    bool IsInUse(string imageId);
}

/// <summary>
/// The user namespace a rootfs is mounted for: its image layers are idmapped through it, and its writable
/// layer belongs to the host ids that the namespace's root maps to.
/// </summary>
public sealed record RootfsIdMap(string UserNamespacePath, uint RootHostUid, uint RootHostGid);

/// <summary>A container's root filesystem: an overlay of the image's layers under a private writable layer.</summary>
public interface IRootfsService
{
    /// <summary>Creates the container's upper/work dirs and mounts the overlay; returns the mount point.
    /// Idempotent: mounting an already mounted rootfs returns the same path. With <paramref name="idMap"/>
    /// the rootfs is owned by the root of that user namespace.</summary>
    Task<string> MountAsync(string containerId, StoredImage image, CancellationToken cancellationToken, RootfsIdMap? idMap = null);

    /// <summary>Unmounts the overlay, keeping the writable layer; a no-op when not mounted.</summary>
    Task UnmountAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>Unmounts and deletes everything of the container's rootfs; a no-op when absent.</summary>
    Task RemoveAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>The writable (upper) dir, whose contents are the container's changes.</summary>
    string UpperDir(string containerId);

    /// <summary>Files added, modified and deleted (overlay whiteouts) in the writable layer.</summary>
    IReadOnlyList<RootfsChange> Changes(string containerId);

    /// <summary>Bytes used by the writable layer.</summary>
    ulong WritableLayerBytes(string containerId);
}
