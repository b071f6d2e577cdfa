using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CriShim.NativeInterop;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>Everything a container's OCI spec is generated from.</summary>
public sealed record ContainerSpecInput(
    string ContainerId,
    ContainerConfig Config,
    PodSandboxRecord Pod,
    string PodDir,
    StoredImage Image,
    string Rootfs,
    string VolumesDir,
    ResolvedUser User,
    string CgroupDriver,
    string CriuConfigFile,
    bool RuntimeHasRecursiveReadOnlyMounts = false,
    bool RuntimeHasIdMappedMounts = false,
    IReadOnlyDictionary<Mount, string>? ImageVolumeSources = null,
    int TargetContainerPid = 0,
    IReadOnlyList<string>? AllowedAnnotations = null,
    IReadOnlyList<Cdi.CdiContainerEdits>? CdiEdits = null,
    ContainerHostInputs? HostInputs = null);

/// <summary>
/// A container's OCI spec, and the host directories it names that must exist before the runtime reads it:
/// the kubelet's bind-mount sources (made when missing) and the image's own volumes (made fresh).
/// </summary>
public sealed record BuiltContainerSpec(JsonObject Spec, IReadOnlyList<string> BindSources, IReadOnlyList<string> ImageConfigVolumes);

/// <summary>
/// Turns a CRI ContainerConfig plus the image config into an OCI runtime spec (config.json). Pure: whatever
/// it needs from the host comes in <see cref="ContainerSpecInput"/>; <see cref="ContainerBundle"/> does the host work.
/// </summary>
public static partial class ContainerSpecBuilder
{
    private const string DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public static BuiltContainerSpec Build(ContainerSpecInput input)
    {
        var config = input.Config;
        var hostInputs = input.HostInputs ?? ContainerHostInputs.None;
        var security = config.Linux?.SecurityContext ?? new LinuxContainerSecurityContext();
        bool privileged = security.Privileged;
        var podConfig = input.Pod.ConfigMessage;
        var podNamespaces = podConfig.Linux?.SecurityContext?.NamespaceOptions ?? new NamespaceOption();
        var resources = config.Linux?.Resources ?? new LinuxContainerResources();

        var linuxResources = Resources(resources);
        var deviceRules = new JsonArray(new JsonObject { ["allow"] = false, ["access"] = "rwm" });
        var devices = new JsonArray();
        AddDevices(config, privileged, hostInputs.DeviceNodes, devices, deviceRules);
        linuxResources["devices"] = deviceRules;

        var (mounts, rootfsPropagation, bindSources, imageConfigVolumes) = Mounts(input, privileged);
        var namespaces = Namespaces(input.Pod, podNamespaces, security.NamespaceOptions ?? new NamespaceOption(), input.TargetContainerPid);
        var linux = new JsonObject
        {
            ["cgroupsPath"] = CgroupPaths.For(input.CgroupDriver, input.Pod.CgroupParent, input.ContainerId),
            ["namespaces"] = namespaces,
            ["resources"] = linuxResources,
            ["devices"] = devices,
        };
        // Every container joins the user namespace of the pod's infra process; the runtime wants its mappings too.
        PodUserNamespace.Of(podNamespaces)?.AddTo(linux, namespaces, PodUserNamespace.PathOf(input.Pod.InfraPid));
        if (rootfsPropagation is not null) linux["rootfsPropagation"] = rootfsPropagation;
        if (!privileged)
        {
            linux["maskedPaths"] = SpecDefaults.Strings(security.MaskedPaths.Count > 0 ? security.MaskedPaths : SpecDefaults.MaskedPaths);
            linux["readonlyPaths"] = SpecDefaults.Strings(security.ReadonlyPaths.Count > 0 ? security.ReadonlyPaths : SpecDefaults.ReadonlyPaths);
            if (Seccomp(security, hostInputs.SeccompLocalhostProfile) is { } seccomp) linux["seccomp"] = seccomp;
        }

        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = Process(input, security, privileged, resources),
            ["root"] = new JsonObject { ["path"] = input.Rootfs, ["readonly"] = security.ReadonlyRootfs },
            ["hostname"] = input.Pod.NetNsPath.Length > 0 ? podConfig.Hostname : null,
            ["mounts"] = mounts,
            ["annotations"] = Annotations(input),
            ["linux"] = linux,
        };
        if (input.CdiEdits is { } cdiEdits) Cdi.CdiDevices.ApplyTo(spec, cdiEdits);
        return new BuiltContainerSpec(spec, bindSources, imageConfigVolumes);
    }

    /// <summary>The kubelet's rule: command replaces the entrypoint; args replace the image's cmd.</summary>
    public static List<string> Arguments(ContainerConfig config, ImageRuntimeConfig image)
    {
        var args = config.Command.Count > 0
            ? [.. config.Command, .. config.Args]
            : new List<string>([.. image.Entrypoint, .. (config.Args.Count > 0 ? config.Args : image.Cmd)]);
        return args.Count > 0 ? args : throw new InvalidRequestException("no command specified: the container config and the image give neither command nor args");
    }

    public static List<string> Environment(ContainerConfig config, ImageRuntimeConfig image, string home)
    {
        var env = new List<string>();
        var index = new Dictionary<string, int>();
        void Set(string key, string entry)
        {
            if (index.TryGetValue(key, out int at)) env[at] = entry;
            else
            {
                index[key] = env.Count;
                env.Add(entry);
            }
        }
        foreach (string entry in image.Env)
        {
            int eq = entry.IndexOf('=');
            Set(eq < 0 ? entry : entry[..eq], entry);
        }
        foreach (var kv in config.Envs) Set(kv.Key, $"{kv.Key}={kv.Value.ToStringUtf8()}");
        if (!index.ContainsKey("PATH")) Set("PATH", DefaultPath);
        if (!index.ContainsKey("HOME")) Set("HOME", $"HOME={home}");
        return env;
    }

    private static JsonObject Process(ContainerSpecInput input, LinuxContainerSecurityContext security, bool privileged, LinuxContainerResources resources)
    {
        var config = input.Config;
        var image = input.Image.Config;
        var capabilities = Capabilities(security, privileged);
        var capabilityArray = SpecDefaults.Strings(capabilities);
        var ambient = security.Capabilities?.AddAmbientCapabilities.Select(Normalize).ToList() ?? [];
        return new JsonObject
        {
            ["terminal"] = config.Tty,
            ["user"] = new JsonObject
            {
                ["uid"] = input.User.Uid,
                ["gid"] = input.User.Gid,
                ["additionalGids"] = new JsonArray(input.User.AdditionalGids.Select(g => (JsonNode)JsonValue.Create(g)!).ToArray()),
            },
            ["args"] = SpecDefaults.Strings(Arguments(config, image)),
            ["env"] = SpecDefaults.Strings(Environment(config, image, input.User.Home)),
            ["cwd"] = config.WorkingDir.Length > 0 ? config.WorkingDir : image.WorkingDir.Length > 0 ? image.WorkingDir : "/",
            ["capabilities"] = new JsonObject
            {
                ["bounding"] = capabilityArray.DeepClone(),
                ["effective"] = capabilityArray.DeepClone(),
                ["permitted"] = capabilityArray.DeepClone(),
                ["ambient"] = SpecDefaults.Strings(ambient),
                ["inheritable"] = SpecDefaults.Strings(ambient),
            },
            ["noNewPrivileges"] = security.NoNewPrivs,
            ["oomScoreAdj"] = OomScore.Clamp(resources.OomScoreAdj),
        };
    }

    private static string Normalize(string capability)
    {
        string upper = capability.ToUpperInvariant();
        return upper.StartsWith("CAP_", StringComparison.Ordinal) ? upper : "CAP_" + upper;
    }

    public static List<string> Capabilities(LinuxContainerSecurityContext security, bool privileged)
    {
        if (privileged) return [.. SpecDefaults.AllCapabilities];
        var set = new List<string>(SpecDefaults.Capabilities);
        var requested = security.Capabilities;
        if (requested is null) return set;
        foreach (string drop in requested.DropCapabilities)
        {
            if (drop.Equals("ALL", StringComparison.OrdinalIgnoreCase)) set.Clear();
            else set.Remove(Normalize(drop));
        }
        foreach (string add in requested.AddCapabilities.Concat(requested.AddAmbientCapabilities))
        {
            var toAdd = add.Equals("ALL", StringComparison.OrdinalIgnoreCase) ? SpecDefaults.AllCapabilities : [Normalize(add)];
            foreach (string capability in toAdd)
            {
                if (!SpecDefaults.KnownCapabilities.Contains(capability)) throw new InvalidRequestException($"unknown capability \"{add}\"");
                if (!set.Contains(capability)) set.Add(capability);
            }
        }
        return set;
    }

    private static JsonArray Namespaces(PodSandboxRecord pod, NamespaceOption podNamespaces, NamespaceOption containerNamespaces, int targetContainerPid)
    {
        string infra(string kind) => $"/proc/{pod.InfraPid}/ns/{kind}";
        var namespaces = new JsonArray(new JsonObject { ["type"] = "mount" });
        if (pod.NetNsPath.Length > 0)
        {
            namespaces.Add((JsonNode)new JsonObject { ["type"] = "network", ["path"] = pod.NetNsPath });
            namespaces.Add((JsonNode)new JsonObject { ["type"] = "uts", ["path"] = infra("uts") });
        }
        if (podNamespaces.Ipc != NamespaceMode.Node) namespaces.Add((JsonNode)new JsonObject { ["type"] = "ipc", ["path"] = infra("ipc") });
        switch (containerNamespaces.Pid)
        {
            case NamespaceMode.Pod:
                namespaces.Add((JsonNode)new JsonObject { ["type"] = "pid", ["path"] = infra("pid") });
                break;
            case NamespaceMode.Container:
                namespaces.Add((JsonNode)new JsonObject { ["type"] = "pid" });
                break;
            case NamespaceMode.Target:
                // kubectl debug --target: an ephemeral container sees the target container's processes.
                namespaces.Add((JsonNode)new JsonObject { ["type"] = "pid", ["path"] = $"/proc/{targetContainerPid}/ns/pid" });
                break;
        }
        return namespaces;
    }

    private static JsonObject Resources(LinuxContainerResources resources)
    {
        if (resources.MemoryLimitInBytes < 0 || resources.MemorySwapLimitInBytes < 0 || resources.CpuShares < 0 || resources.CpuPeriod < 0)
        {
            throw new InvalidRequestException("memory_limit_in_bytes, memory_swap_limit_in_bytes, cpu_shares and cpu_period must not be negative");
        }
        // The kernel's limits (CFS bandwidth: period 1 ms to 1 s, quota at least 1 ms or -1 for none),
        // checked here so a bad value is the caller's error, not the runtime's failure.
        if (resources.CpuPeriod is > 0 and (< 1_000 or > 1_000_000))
        {
            throw new InvalidRequestException($"cpu_period {resources.CpuPeriod} must be between 1000 and 1000000 microseconds");
        }
        if (resources.CpuQuota is < -1 or (> 0 and < 1_000))
        {
            throw new InvalidRequestException($"cpu_quota {resources.CpuQuota} must be -1, 0 or at least 1000 microseconds");
        }
        ValidateCpuList(resources.CpusetCpus, "cpuset_cpus");
        ValidateCpuList(resources.CpusetMems, "cpuset_mems");
        var result = new JsonObject();
        var memory = new JsonObject();
        if (resources.MemoryLimitInBytes > 0) memory["limit"] = resources.MemoryLimitInBytes;
        if (resources.MemorySwapLimitInBytes > 0) memory["swap"] = resources.MemorySwapLimitInBytes;
        if (memory.Count > 0) result["memory"] = memory;
        var cpu = new JsonObject();
        if (resources.CpuShares > 0) cpu["shares"] = resources.CpuShares;
        if (resources.CpuQuota != 0) cpu["quota"] = resources.CpuQuota;
        if (resources.CpuPeriod > 0) cpu["period"] = resources.CpuPeriod;
        if (resources.CpusetCpus.Length > 0) cpu["cpus"] = resources.CpusetCpus;
        if (resources.CpusetMems.Length > 0) cpu["mems"] = resources.CpusetMems;
        if (cpu.Count > 0) result["cpu"] = cpu;
        if (resources.HugepageLimits.Count > 0)
        {
            result["hugepageLimits"] = new JsonArray(resources.HugepageLimits
                .Select(h => (JsonNode)new JsonObject { ["pageSize"] = h.PageSize, ["limit"] = h.Limit }).ToArray());
        }
        if (resources.Unified.Count > 0)
        {
            var unified = new JsonObject();
            foreach (var (key, value) in resources.Unified) unified[key] = value;
            result["unified"] = unified;
        }
        return result;
    }

    /// <summary>A cpuset list as the kernel reads it: "0-3,8,10-11".</summary>
    private static void ValidateCpuList(string list, string field)
    {
        if (list.Length > 0 && !CpuListPattern().IsMatch(list))
        {
            throw new InvalidRequestException($"{field} \"{list}\" is not a list of numbers and ranges such as 0-3,8");
        }
    }

    [GeneratedRegex(@"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*\z")]
    private static partial Regex CpuListPattern();

    /// <summary>The resources object `runc update --resources` takes, validated.</summary>
    public static JsonObject UpdatableResources(LinuxContainerResources resources) => Resources(resources);

    private static void AddDevices(ContainerConfig config, bool privileged, IReadOnlyDictionary<string, DeviceNode> nodes, JsonArray devices, JsonArray rules)
    {
        if (privileged)
        {
            rules.Add((JsonNode)new JsonObject { ["allow"] = true, ["access"] = "rwm" });
        }
        foreach (var device in config.Devices)
        {
            if (!Path.IsPathRooted(device.ContainerPath))
            {
                throw new InvalidRequestException($"device paths must be absolute: host \"{device.HostPath}\", container \"{device.ContainerPath}\"");
            }
            if (!nodes.TryGetValue(device.HostPath, out var node))
            {
                throw new InvalidOperationException($"device {device.HostPath} was not read from the host");
            }
            string access = device.Permissions.Length > 0 ? device.Permissions : "rwm";
            if (access.Any(c => c is not ('r' or 'w' or 'm')))
            {
                throw new InvalidRequestException($"device {device.HostPath}: permissions \"{device.Permissions}\" must use only r, w and m");
            }
            devices.Add((JsonNode)new JsonObject
            {
                ["path"] = device.ContainerPath,
                ["type"] = node.Type.ToString(),
                ["major"] = node.Major,
                ["minor"] = node.Minor,
                ["fileMode"] = node.FileMode,
                ["uid"] = 0,
                ["gid"] = 0,
            });
            rules.Add((JsonNode)new JsonObject
            {
                ["allow"] = true,
                ["type"] = node.Type.ToString(),
                ["major"] = node.Major,
                ["minor"] = node.Minor,
                ["access"] = access,
            });
        }
    }

    private static (JsonArray Mounts, string? RootfsPropagation, List<string> BindSources, List<string> ImageConfigVolumes) Mounts(
        ContainerSpecInput input, bool privileged)
    {
        var config = input.Config;
        var requested = new Dictionary<string, JsonObject>();
        var bindSources = new List<string>();
        var imageConfigVolumes = new List<string>();
        string? rootfsPropagation = null;
        foreach (var mount in config.Mounts)
        {
            string destination = CleanContainerPath(mount.ContainerPath);
            if (ImageVolumes.IsImageVolume(mount))
            {
                // The image's files as the kubelet asks for them (KEP-4639): read-only and private, yet executable.
                // In a user-namespaced pod ImageVolumes already mounted it through the pod's id map, as the rootfs,
                // so the runtime must not idmap it again: no idmap option here.
                string source = input.ImageVolumeSources?.GetValueOrDefault(mount)
                    ?? throw new InvalidOperationException($"mount {destination}: image volume {mount.Image.Image} was not mounted");
                requested[destination] = SpecDefaults.BindMount(destination, source, readOnly: true);
                requested[destination]["options"]!.AsArray().Add((JsonNode)"nosuid");
                requested[destination]["options"]!.AsArray().Add((JsonNode)"nodev");
                continue;
            }
            if (mount.RecursiveReadOnly)
            {
                // The kubelet's rules: rro needs ro and private propagation, and a runtime that knows "rro".
                if (!mount.Readonly) throw new InvalidRequestException($"mount {destination}: recursive_read_only needs readonly");
                if (mount.Propagation != MountPropagation.PropagationPrivate)
                {
                    throw new InvalidRequestException($"mount {destination}: recursive_read_only needs private propagation, not {mount.Propagation}");
                }
                if (!input.RuntimeHasRecursiveReadOnlyMounts)
                {
                    throw new InvalidRequestException($"mount {destination}: runtime handler \"{input.Pod.RuntimeHandler}\" does not support recursive read-only mounts");
                }
            }
            if (!Path.IsPathRooted(mount.HostPath) || mount.HostPath.Split('/').Contains("..") || mount.HostPath.Contains('\0'))
            {
                throw new InvalidRequestException($"mount {destination}: host path \"{mount.HostPath}\" must be absolute and must not contain \"..\" or a NUL character");
            }
            bindSources.Add(mount.HostPath);
            string propagation = mount.Propagation switch
            {
                MountPropagation.PropagationHostToContainer => "rslave",
                MountPropagation.PropagationBidirectional => "rshared",
                _ => "rprivate",
            };
            if (propagation == "rshared" || (propagation == "rslave" && rootfsPropagation is null)) rootfsPropagation = propagation;
            requested[destination] = SpecDefaults.BindMount(destination, mount.HostPath, mount.Readonly, propagation, mount.RecursiveReadOnly);
            if (mount.UidMappings.Count > 0 || mount.GidMappings.Count > 0) IdMap(requested[destination], mount, input);
        }

        var mounts = SpecDefaults.BaseMounts(readOnlySys: !privileged);
        void AddUnlessRequested(JsonObject mount)
        {
            if (!requested.ContainsKey(mount["destination"]!.GetValue<string>())) mounts.Add((JsonNode)mount);
        }
        AddUnlessRequested(input.Pod.ShmPath.Length > 0
            ? SpecDefaults.BindMount("/dev/shm", input.Pod.ShmPath, readOnly: false)
            : SpecDefaults.BindMount("/dev/shm", "/dev/shm", readOnly: false));
        AddUnlessRequested(SpecDefaults.BindMount("/etc/hostname", PodFiles.Hostname(input.PodDir), readOnly: false));
        AddUnlessRequested(SpecDefaults.BindMount("/etc/hosts", PodFiles.Hosts(input.PodDir), readOnly: false));
        AddUnlessRequested(SpecDefaults.BindMount("/etc/resolv.conf", PodFiles.ResolvConf(input.PodDir), readOnly: false));
        foreach (string volume in input.Image.Config.Volumes)
        {
            string destination = CleanContainerPath(volume);
            if (requested.ContainsKey(destination)) continue;
            string source = Path.Combine(input.VolumesDir, Convert.ToHexString(System.Text.Encoding.UTF8.GetBytes(destination)));
            imageConfigVolumes.Add(source);
            mounts.Add((JsonNode)SpecDefaults.BindMount(destination, source, readOnly: false));
        }
        // Parents before children, so a mount under another mount is not hidden by it.
        foreach (var mount in requested.OrderBy(m => m.Key.Count(c => c == '/')).ThenBy(m => m.Key, StringComparer.Ordinal))
        {
            mounts.Add((JsonNode)mount.Value);
        }
        return (mounts, rootfsPropagation, bindSources, imageConfigVolumes);
    }

    /// <summary>The kubelet's volumes of a user-namespaced pod: the runtime shows them through the pod's id mapping.</summary>
    private static void IdMap(JsonObject bindMount, Mount mount, ContainerSpecInput input)
    {
        string destination = bindMount["destination"]!.GetValue<string>();
        if (!input.RuntimeHasIdMappedMounts)
        {
            throw new InvalidRequestException($"mount {destination}: runtime handler \"{input.Pod.RuntimeHandler}\" does not support idmapped mounts");
        }
        if (mount.UidMappings.Count == 0 || mount.GidMappings.Count == 0)
        {
            throw new InvalidRequestException($"mount {destination}: an idmapped mount needs both uid and gid mappings");
        }
        bindMount["options"]!.AsArray().Add((JsonNode)"idmap");
        bindMount["uidMappings"] = PodUserNamespace.SpecMappings(mount.UidMappings);
        bindMount["gidMappings"] = PodUserNamespace.SpecMappings(mount.GidMappings);
    }

    private static string CleanContainerPath(string path)
    {
        if (!path.StartsWith('/') || path.Split('/').Contains(".."))
        {
            throw new InvalidRequestException($"container path \"{path}\" must be absolute and must not contain \"..\"");
        }
        return path.Length > 1 ? path.TrimEnd('/') : path;
    }

    private static JsonObject? Seccomp(LinuxContainerSecurityContext security, JsonObject? localhostProfile)
    {
        var profile = security.Seccomp;
        // No profile means Unconfined, as the kubelet sends RuntimeDefault explicitly when it wants it.
        if (profile is null) return null;
        return profile.ProfileType switch
        {
            SecurityProfile.Types.ProfileType.Unconfined => null,
            SecurityProfile.Types.ProfileType.RuntimeDefault => SpecDefaults.RuntimeDefaultSeccomp(),
            // A copy, so the same input builds the same spec again.
            _ => (JsonObject)(localhostProfile ?? throw new InvalidOperationException($"seccomp profile {profile.LocalhostRef} was not read from the host")).DeepClone(),
        };
    }

    /// <summary>Whether the node's runtime.allowed_annotations lets a CRI annotation into the OCI spec.</summary>
    public static bool IsAllowedAnnotation(IReadOnlyList<string> allowed, string key) =>
        allowed.Any(pattern => pattern.EndsWith('*') ? key.StartsWith(pattern[..^1], StringComparison.Ordinal) : key == pattern);

    private static JsonObject Annotations(ContainerSpecInput input)
    {
        var annotations = new JsonObject();
        foreach (var (key, value) in input.Config.Annotations.Where(a => IsAllowedAnnotation(input.AllowedAnnotations ?? [], a.Key)))
        {
            annotations[key] = value;
        }
        var podMetadata = input.Pod.ConfigMessage.Metadata;
        annotations["io.kubernetes.cri.container-type"] = "container";
        annotations["io.kubernetes.cri.container-name"] = input.Config.Metadata.Name;
        annotations["io.kubernetes.cri.sandbox-id"] = input.Pod.Id;
        annotations["io.kubernetes.cri.sandbox-name"] = podMetadata.Name;
        annotations["io.kubernetes.cri.sandbox-namespace"] = podMetadata.Namespace;
        annotations["io.kubernetes.cri.sandbox-uid"] = podMetadata.Uid;
        annotations["io.kubernetes.cri.image-name"] = input.Config.Image.Image;
        annotations["io.kubernetes.pod.name"] = podMetadata.Name;
        annotations["io.kubernetes.pod.namespace"] = podMetadata.Namespace;
        annotations["io.kubernetes.pod.uid"] = podMetadata.Uid;
        annotations["io.container.manager"] = "crishim";
        // runc and crun read extra CRIU options for this container's dumps from the file this names.
        if (input.CriuConfigFile.Length > 0 && !annotations.ContainsKey("org.criu.config")) annotations["org.criu.config"] = input.CriuConfigFile;
        return annotations;
    }
}
