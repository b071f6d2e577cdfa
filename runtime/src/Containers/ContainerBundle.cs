using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>What <see cref="ContainerSpecBuilder.Build"/> needs read from the host: the device nodes and the seccomp profile the CRI names.</summary>
public sealed record ContainerHostInputs(IReadOnlyDictionary<string, DeviceNode> DeviceNodes, JsonObject? SeccompLocalhostProfile)
{
    public static readonly ContainerHostInputs None = new(new Dictionary<string, DeviceNode>(), null);
}

/// <summary>
/// The create path's host work around the pure <see cref="ContainerSpecBuilder.Build"/>: before it, read
/// what the spec depends on; after it, make the directories the spec names and write the bundle's config.json.
/// </summary>
public static class ContainerBundle
{
    /// <summary>Host paths above and at a missing bind-mount source are the host's, not CriShim's state: 0755, as the kubelet makes them.</summary>
    private const UnixFileMode HostDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>The volume's root, as the container sees it.</summary>
    private const UnixFileMode VolumeRoot = StateDirectory.Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>Far more than any real profile (the runtime default is about 20 KiB).</summary>
    private const int SeccompProfileLimit = 1 << 20;

    public static ContainerHostInputs ReadHostInputs(ContainerConfig config)
    {
        var devices = new Dictionary<string, DeviceNode>();
        foreach (var device in config.Devices)
        {
            if (!Path.IsPathRooted(device.HostPath))
            {
                throw new InvalidRequestException($"device paths must be absolute: host \"{device.HostPath}\", container \"{device.ContainerPath}\"");
            }
            try
            {
                devices[device.HostPath] = Devices.Stat(device.HostPath) ?? throw new InvalidRequestException($"{device.HostPath} is not a device node");
            }
            catch (NativeCallException e)
            {
                throw new InvalidRequestException($"device {device.HostPath}: {e.Message}");
            }
        }
        var security = config.Linux?.SecurityContext;
        // A privileged container runs unconfined, so its profile is never read.
        var profile = security is { Privileged: false, Seccomp.ProfileType: SecurityProfile.Types.ProfileType.Localhost }
            ? LocalhostProfile(security.Seccomp.LocalhostRef)
            : null;
        return new ContainerHostInputs(devices, profile);
    }

    /// <summary>The profile the CRI names: read bounded, and never blocking on a FIFO or device given in its place.</summary>
    internal static JsonObject LocalhostProfile(string path)
    {
        if (!Path.IsPathRooted(path)) throw new InvalidRequestException($"seccomp localhost profile \"{path}\" must be an absolute path");
        if (path.Contains('\0')) throw new InvalidRequestException("seccomp localhost profile must not contain a NUL character");
        byte[] content = BoundedFile.ReadInRoot("/", path, SeccompProfileLimit, $"seccomp localhost profile {path}")
            ?? throw new InvalidRequestException($"seccomp localhost profile {path} does not exist");
        try
        {
            return JsonNode.Parse(content) as JsonObject ?? throw new InvalidRequestException($"seccomp profile {path} is not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidRequestException($"seccomp profile {path} is not valid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// Makes what the spec names and nobody else makes: missing kubelet bind-mount sources, and the image's
    /// own volumes (fresh ones owned by the container's root, which in a pod user namespace is not the host's);
    /// then writes config.json into <paramref name="bundleDir"/>.
    /// </summary>
    public static void Prepare(BuiltContainerSpec built, string volumesDir, string bundleDir, PodUserNamespace? userNamespace)
    {
        foreach (string source in built.BindSources)
        {
            if (!Path.Exists(source)) Directory.CreateDirectory(source, HostDirectory);
        }
        foreach (string source in built.ImageConfigVolumes)
        {
            if (Directory.Exists(source)) continue;
            // Searchable, so a user-namespaced pod's root reaches its volumes; others are kept out by the container's dir.
            StateDirectory.Create(volumesDir, StateDirectory.Traversable);
            StateDirectory.Create(source, VolumeRoot);
            if (userNamespace is not null) FileNodes.ChangeOwner(source, (int)userNamespace.Uids.HostId, (int)userNamespace.Gids.HostId);
        }
        AtomicFile.WriteText(Path.Combine(bundleDir, "config.json"), built.Spec.ToJsonString());
    }
}
