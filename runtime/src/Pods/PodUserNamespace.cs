using System.Text.Json.Nodes;
using CriShim.Runtime.Images;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>
/// A pod's own user namespace (KEP-127, `hostUsers: false`): the infra process creates it with the
/// pod's one uid and one gid mapping, and every container joins it through the infra process.
/// </summary>
public sealed record PodUserNamespace(IDMapping Uids, IDMapping Gids)
{
    /// <summary>The pod's user namespace, or null when the pod uses the host's; throws InvalidRequestException for what cannot run.</summary>
    public static PodUserNamespace? Of(PodSandboxConfig config) =>
        Of(config.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption());

    public static PodUserNamespace? Of(NamespaceOption namespaces)
    {
        var userns = namespaces.UsernsOptions;
        if (userns is null) return null;
        switch (userns.Mode)
        {
            case NamespaceMode.Node:
                if (userns.Uids.Count > 0 || userns.Gids.Count > 0)
                {
                    throw new InvalidRequestException("user namespace mode NODE takes no uid or gid mappings");
                }
                return null;
            case NamespaceMode.Pod:
                break;
            default:
                // The CRI allows only POD and NODE: the containers of a pod always share its user namespace.
                throw new InvalidRequestException($"user namespace mode {userns.Mode.ToString().ToUpperInvariant()} is not supported, only POD and NODE");
        }
        if (namespaces.Network == NamespaceMode.Node || namespaces.Pid == NamespaceMode.Node || namespaces.Ipc == NamespaceMode.Node)
        {
            throw new InvalidRequestException("a pod with its own user namespace cannot share the host's network, PID or IPC namespace");
        }
        return new PodUserNamespace(OnlyMapping("uid", userns.Uids), OnlyMapping("gid", userns.Gids));
    }

    /// <summary>As the kubelet allocates them: one range per pod that maps the container's id 0.</summary>
    private static IDMapping OnlyMapping(string kind, IReadOnlyList<IDMapping> mappings)
    {
        if (mappings.Count != 1)
        {
            throw new InvalidRequestException($"a pod user namespace needs exactly one {kind} mapping, got {mappings.Count}");
        }
        var mapping = mappings[0];
        if (mapping.ContainerId != 0)
        {
            throw new InvalidRequestException($"the {kind} mapping must map container id 0, it starts at {mapping.ContainerId}");
        }
        if (mapping.Length == 0 || (ulong)mapping.HostId + mapping.Length > uint.MaxValue)
        {
            throw new InvalidRequestException($"the {kind} mapping of length {mapping.Length} from host id {mapping.HostId} is empty or beyond the id range");
        }
        return mapping;
    }

    /// <summary>The OCI spec's uidMappings or gidMappings (of linux, or of an idmapped mount).</summary>
    public static JsonArray SpecMappings(params IEnumerable<IDMapping> mappings) =>
        new(mappings.Select(m => (JsonNode)new JsonObject { ["containerID"] = m.ContainerId, ["hostID"] = m.HostId, ["size"] = m.Length }).ToArray());

    /// <summary>Adds the user namespace (created, or joined at <paramref name="path"/>) and its mappings to an OCI spec's linux object.</summary>
    public void AddTo(JsonObject linux, JsonArray namespaces, string? path)
    {
        var user = new JsonObject { ["type"] = "user" };
        if (path is not null) user["path"] = path;
        namespaces.Add((JsonNode)user);
        linux["uidMappings"] = SpecMappings(Uids);
        linux["gidMappings"] = SpecMappings(Gids);
    }

    /// <summary>
    /// The runtime mounts a user-namespaced pod's rootfs, /etc files and /dev/shm from inside the pod's user
    /// namespace, where the host's root is nobody: the state and run roots and the shared directories below them
    /// on the way to those files become searchable, not listable, by others (0711, as containerd's). Opened at
    /// the first such pod (and again at each of its containers, as start-up closes them), so other nodes keep them 0700.
    /// </summary>
    public static void OpenForTraversal(StatePaths paths)
    {
        foreach (string root in paths.Roots)
        {
            for (var above = new DirectoryInfo(Path.GetFullPath(root)).Parent; above is not null; above = above.Parent)
            {
                if (!above.UnixFileMode.HasFlag(UnixFileMode.OtherExecute))
                {
                    throw new WrongStateException($"{above.FullName} (above {root}) is not searchable by others, so the root of a pod user namespace cannot reach the pod's files");
                }
            }
        }
        foreach (string directory in paths.UserNamespaceTraversal)
        {
            StateDirectory.Create(directory);
            File.SetUnixFileMode(directory, StateDirectory.Traversable);
        }
    }

    /// <summary>
    /// The shared path (<see cref="OpenForTraversal"/>), and the pod's or container's own directories searchable by the
    /// pod's root group alone (0710), so no other host user reaches a rootfs, volume or /dev/shm through them.
    /// </summary>
    public void OpenStateTo(StatePaths paths, params string[] ownDirectories)
    {
        OpenForTraversal(paths);
        foreach (string directory in ownDirectories) StateDirectory.OpenToGroup(directory, Gids.HostId);
    }

    /// <summary>
    /// The pod's /etc files belong to the container's root, as CRI-O and containerd hand them over, so
    /// root in the pod can edit /etc/hosts as on a host-user pod.
    /// </summary>
    public void GiveToContainerRoot(params string[] paths)
    {
        foreach (string path in paths) CriShim.NativeInterop.FileNodes.ChangeOwner(path, (int)Uids.HostId, (int)Gids.HostId);
    }

    /// <summary>tmpfs options that make /dev/shm's root the container root's.</summary>
    public string ShmOwnerOptions => $",uid={Uids.HostId},gid={Gids.HostId}";

    /// <summary>The infra process's user namespace, for containers to join.</summary>
    public static string PathOf(int infraPid) => $"/proc/{infraPid}/ns/user";

    /// <summary>How a container of the pod gets a rootfs its root owns.</summary>
    public RootfsIdMap RootfsIdMap(int infraPid) => new(PathOf(infraPid), Uids.HostId, Gids.HostId);
}
