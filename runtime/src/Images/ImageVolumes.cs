using CriShim.NativeInterop;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Images;

/// <summary>
/// Kubernetes image volumes (KEP-4639, CRI <c>Mount.image</c>): an image's root filesystem, mounted read-only
/// for one container at &lt;volumes dir&gt;/&lt;image id hex&gt;, once per image however many mounts name it.
/// Unlike a rootfs there is no upper dir, so the overlay is read-only by itself. The mounts outlive the
/// daemon, like the containers; <see cref="RemoveAll"/> finds them on disk, so removal works after a restart.
/// </summary>
public sealed class ImageVolumes(ImageStore images, LayerStore layers, ILogger<ImageVolumes> logger)
{
    private const string EmptyLowerDir = "empty";

    public static bool IsImageVolume(Mount mount) => mount.Image is { Image.Length: > 0 };

    /// <summary>The pulled image an image-volume mount names, after checking the mount as containerd does.</summary>
    public StoredImage ImageOf(Mount mount)
    {
        string name = mount.Image.Image;
        // The kubelet sends image volumes read-only and without a host path; containerd refuses anything else.
        if (!mount.Readonly) throw new InvalidRequestException($"image volume {mount.ContainerPath} ({name}) must be readonly");
        if (mount.HostPath.Length > 0) throw new InvalidRequestException($"image volume {mount.ContainerPath} ({name}) must not have a host_path");
        CheckSubPath(mount.ImageSubPath);
        var image = images.Find(name) ?? throw new NotFoundException($"image \"{name}\" of the image volume at {mount.ContainerPath} not found: pull it first");
        CheckpointImages.RequireRootfsImage(image, $"image \"{name}\" of the image volume at {mount.ContainerPath}");
        return image;
    }

    /// <summary>The kubelet's rules for image_sub_path: relative and without "..", so only resolution could leave the image.</summary>
    public static void CheckSubPath(string subPath)
    {
        if (subPath.StartsWith('/') || subPath.Contains('\0') || subPath.Split('/').Contains(".."))
        {
            throw new InvalidRequestException($"image_sub_path \"{subPath}\" must be a relative path without \"..\"");
        }
    }

    /// <summary>
    /// Mounts <paramref name="image"/> under <paramref name="volumesDirectory"/> unless it already is, and returns
    /// the host path to bind: the image's root, or the directory <paramref name="subPath"/> names in it. A failure
    /// may leave the mount behind; the container's clean-up (<see cref="RemoveAll"/>) takes it away.
    /// </summary>
    public string Mount(string volumesDirectory, StoredImage image, string subPath, RootfsIdMap? idMap = null)
    {
        CheckSubPath(subPath);
        string target = Path.Combine(volumesDirectory, ContentDigest.Hex(image.Id));
        if (!MountTable.IsMountPoint(target)) MountLayers(volumesDirectory, target, image, idMap);
        return subPath.Length == 0 ? target : ResolveSubPath(target, subPath);
    }

    private void MountLayers(string volumesDirectory, string target, StoredImage image, RootfsIdMap? idMap)
    {
        var diffIds = images.DiffIdsOf(image.Id) ?? throw new NotFoundException($"image {image.Id} is not in the store");
        // In a user-namespaced pod the layers are idmapped as its rootfs's are, so its root owns what the image's root does.
        using var lowers = layers.Lowers(diffIds, idMap, $"image {image.Id}");
        // Without an upper dir overlayfs wants two lower dirs at least, and distinct ones: empty ones pad a short image.
        var lowerDirs = lowers.Paths.ToList();
        for (int padding = lowerDirs.Count; padding < 2; padding++)
        {
            string empty = Path.Combine(volumesDirectory, EmptyLowerDir, padding.ToString(System.Globalization.CultureInfo.InvariantCulture));
            StateDirectory.Create(empty);
            lowerDirs.Add(empty);
        }
        string options = "lowerdir=" + string.Join(':', lowerDirs);
        OverlayRootfsService.CheckOptionsFit(options, $"image {image.Id}", diffIds.Count);
        // Searchable, so a user-namespaced pod's root reaches its volumes; others are kept out by the container's dir.
        StateDirectory.Create(volumesDirectory, StateDirectory.Traversable);
        StateDirectory.Create(target);
        // Binaries in an image volume may run (no noexec); set-id bits and device nodes stay inert.
        WorkingDirectories.RunIn(layers.Home, () =>
            Mounts.Mount("overlay", target, "overlay", MountFlags.ReadOnly | MountFlags.NoSuid | MountFlags.NoDev, options));
        logger.LogDebug("mounted image volume {Image} at {Target}: {Layers} layers", image.Id, target, diffIds.Count);
    }

    /// <summary>
    /// The host path of directory <paramref name="subPath"/> inside <paramref name="root"/>, its symlinks resolved as
    /// the image means them (openat2 RESOLVE_IN_ROOT), so none leads out. The tree is read-only and its layers
    /// immutable, so the path stays what it was resolved to when the OCI runtime binds it.
    /// </summary>
    public static string ResolveSubPath(string root, string subPath)
    {
        try
        {
            using var directory = RootedPaths.OpenDirectoryInRoot(root, subPath);
            return RootedPaths.PathOf(directory);
        }
        catch (NativeCallException e)
        {
            throw new InvalidRequestException($"image_sub_path \"{subPath}\" is not a directory in the image ({e.Message})");
        }
    }

    /// <summary>Unmounts every image volume under <paramref name="volumesDirectory"/> and deletes it; a no-op when absent.</summary>
    public void RemoveAll(string volumesDirectory)
    {
        if (!Directory.Exists(volumesDirectory)) return;
        foreach (string volume in Directory.EnumerateDirectories(volumesDirectory))
        {
            // Detached, not refused when busy: the image's files are read-only, nothing is lost by a lazy unmount.
            if (MountTable.IsMountPoint(volume)) Mounts.Unmount(volume, UnmountFlags.Detach);
        }
        Directory.Delete(volumesDirectory, recursive: true);
        logger.LogDebug("removed image volumes in {Directory}", volumesDirectory);
    }
}
