using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Cdi;

/// <summary>
/// Resolves the CDI devices a container asks for (ContainerConfig.CDI_devices and the values of its
/// cdi.k8s.io/* annotations, comma-separated) against the spec files in the configured directories.
/// A later directory overrides an earlier one (/var/run/cdi over /etc/cdi, as the CDI registry does);
/// a device defined twice in one directory is ambiguous. Spec files are read only when a container
/// asks for a device, so a broken file affects only the containers that need it.
/// </summary>
public static class CdiDevices
{
    public const string AnnotationPrefix = "cdi.k8s.io/";
    private const int MaxFilesPerDirectory = 1000;

    /// <summary>Fully qualified device names (vendor/class=name) in request order, without repeats.</summary>
    public static List<string> Requested(ContainerConfig config)
    {
        var names = config.CDIDevices.Select(d => d.Name)
            .Concat(config.Annotations.Where(a => a.Key.StartsWith(AnnotationPrefix, StringComparison.Ordinal)).OrderBy(a => a.Key, StringComparer.Ordinal)
                .SelectMany(a => a.Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)));
        return names.Distinct().ToList();
    }

    /// <summary>The edits to apply, spec-level ones once per spec and before its devices'; null when nothing is asked for.</summary>
    /// <exception cref="InvalidRequestException">A name is malformed or no spec defines it (all such names are listed).</exception>
    public static List<CdiContainerEdits>? Resolve(ContainerConfig config, IReadOnlyList<string> specDirs)
    {
        var requested = Requested(config);
        if (requested.Count == 0) return null;
        var malformed = requested.Where(name => Split(name) is null).ToList();
        if (malformed.Count > 0) throw new InvalidRequestException($"CDI device names must be vendor/class=name: {string.Join(", ", malformed)}");
        var (devices, problems) = Load(specDirs);
        var unknown = requested.Where(name => !devices.ContainsKey(name)).ToList();
        if (unknown.Count > 0)
        {
            string why = problems.Count == 0 ? "" : $" (spec files skipped: {string.Join("; ", problems.Take(5))})";
            throw new InvalidRequestException($"unresolvable CDI devices: {string.Join(", ", unknown)}; none of the specs in {string.Join(", ", specDirs)} defines them{why}");
        }
        var edits = new List<CdiContainerEdits>();
        var specsApplied = new HashSet<CdiSpec>();
        foreach (string name in requested)
        {
            var (spec, device) = devices[name];
            if (specsApplied.Add(spec)) edits.Add(spec.Edits);
            edits.Add(device.Edits);
        }
        return edits;
    }

    private static (string Kind, string Name)? Split(string qualified)
    {
        int eq = qualified.IndexOf('=');
        if (eq < 0) return null;
        string kind = qualified[..eq], name = qualified[(eq + 1)..];
        return CdiSpec.IsValidKind(kind) && CdiSpec.IsValidDeviceName(name) ? (kind, name) : null;
    }

    /// <summary>Every device of every readable spec; files that cannot be used are reported, not fatal.</summary>
    private static (Dictionary<string, (CdiSpec Spec, CdiDevice Device)> Devices, List<string> Problems) Load(IReadOnlyList<string> specDirs)
    {
        var devices = new Dictionary<string, (CdiSpec, CdiDevice)>();
        var problems = new List<string>();
        foreach (string dir in specDirs)
        {
            var inThisDir = new Dictionary<string, (CdiSpec Spec, CdiDevice Device)>();
            foreach (string file in SpecFiles(dir))
            {
                CdiSpec spec;
                try
                {
                    spec = CdiSpec.Parse(ReadCapped(file), file);
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or InvalidRequestException)
                {
                    problems.Add(e.Message);
                    continue;
                }
                foreach (var device in spec.Devices)
                {
                    string name = $"{spec.Kind}={device.Name}";
                    if (inThisDir.TryGetValue(name, out var other))
                    {
                        problems.Add($"{name} is defined in both {other.Spec.File} and {file}");
                        inThisDir.Remove(name);
                        continue;
                    }
                    inThisDir[name] = (spec, device);
                }
            }
            foreach (var (name, entry) in inThisDir) devices[name] = entry;
        }
        return (devices, problems);
    }

    /// <summary>Regular .json/.yaml files in lexical order (symlinks to them count, as the CDI tools create none but admins may).</summary>
    private static IEnumerable<string> SpecFiles(string dir)
    {
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir)
            .Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).Take(MaxFilesPerDirectory).ToList();
    }

    /// <summary>The spec file's text; a FIFO or device named like a spec is refused without blocking on it.</summary>
    private static string ReadCapped(string file) =>
        System.Text.Encoding.UTF8.GetString(BoundedFile.ReadInRoot("/", file, CdiSpec.MaxFileBytes, file)
            ?? throw new FileNotFoundException($"{file}: removed while the spec directory was read", file));

    /// <summary>Applies the edits to an OCI spec built by ContainerSpecBuilder, in order: a later edit overrides an env key, device path or mount destination.</summary>
    public static void ApplyTo(JsonObject spec, IEnumerable<CdiContainerEdits> edits)
    {
        var process = spec["process"]!.AsObject();
        var linux = spec["linux"]!.AsObject();
        foreach (var edit in edits)
        {
            var env = process["env"]!.AsArray();
            foreach (string entry in edit.Env)
            {
                string key = entry[..(entry.IndexOf('=') + 1)];
                ReplaceOrAdd(env, e => e!.GetValue<string>().StartsWith(key, StringComparison.Ordinal), JsonValue.Create(entry));
            }
            foreach (var node in edit.DeviceNodes) AddDeviceNode(linux, node);
            var mounts = spec["mounts"]!.AsArray();
            foreach (var mount in edit.Mounts)
            {
                string type = mount.Type.Length > 0 ? mount.Type : "bind";
                var options = mount.Options.ToList();
                if (type == "bind" && !options.Contains("bind") && !options.Contains("rbind")) options.Add("rbind");
                ReplaceOrAdd(mounts, m => m!["destination"]!.GetValue<string>() == mount.ContainerPath, new JsonObject
                {
                    ["destination"] = mount.ContainerPath,
                    ["type"] = type,
                    ["source"] = mount.HostPath,
                    ["options"] = new JsonArray(options.Select(o => (JsonNode)JsonValue.Create(o)!).ToArray()),
                });
            }
            foreach (var hook in edit.Hooks)
            {
                var hooks = (spec["hooks"] ??= new JsonObject()).AsObject();
                var list = (hooks[hook.HookName] ??= new JsonArray()).AsArray();
                var entry = new JsonObject
                {
                    ["path"] = hook.Path,
                    ["args"] = new JsonArray(hook.Args.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray()),
                    ["env"] = new JsonArray(hook.Env.Select(e => (JsonNode)JsonValue.Create(e)!).ToArray()),
                };
                if (hook.Timeout is { } timeout) entry["timeout"] = timeout;
                list.Add((JsonNode)entry);
            }
            var gids = process["user"]!["additionalGids"]!.AsArray();
            foreach (uint gid in edit.AdditionalGids)
            {
                // Compared as JSON text: the builder's values may be any integer type.
                if (!gids.Any(g => g!.ToJsonString() == gid.ToString(System.Globalization.CultureInfo.InvariantCulture))) gids.Add((JsonNode)JsonValue.Create(gid));
            }
        }
    }

    private static void AddDeviceNode(JsonObject linux, CdiDeviceNode node)
    {
        char type;
        long major, minor;
        int fileMode;
        if (node.Type is { } given && (given == 'p' || node.Major is not null))
        {
            (type, major, minor, fileMode) = (given, node.Major ?? 0, node.Minor ?? 0, node.FileMode ?? 0b110_110_110);
        }
        else
        {
            DeviceNode found;
            try
            {
                found = Devices.Stat(node.HostPath) ?? throw new InvalidRequestException($"CDI device node {node.HostPath} is not a device node");
            }
            catch (NativeCallException e)
            {
                throw new InvalidRequestException($"CDI device node {node.HostPath}: {e.Message}");
            }
            (type, major, minor, fileMode) = (found.Type, found.Major, found.Minor, node.FileMode ?? found.FileMode);
        }
        ReplaceOrAdd(linux["devices"]!.AsArray(), d => d!["path"]!.GetValue<string>() == node.Path, new JsonObject
        {
            ["path"] = node.Path,
            ["type"] = type.ToString(),
            ["major"] = major,
            ["minor"] = minor,
            ["fileMode"] = fileMode,
            ["uid"] = node.Uid ?? 0,
            ["gid"] = node.Gid ?? 0,
        });
        if (type == 'p') return;
        linux["resources"]!["devices"]!.AsArray().Add((JsonNode)new JsonObject
        {
            ["allow"] = true,
            ["type"] = type.ToString(),
            ["major"] = major,
            ["minor"] = minor,
            ["access"] = node.Permissions.Length > 0 ? node.Permissions : "rwm",
        });
    }

    private static void ReplaceOrAdd(JsonArray array, Func<JsonNode?, bool> same, JsonNode item)
    {
        int at = array.ToList().FindIndex(n => same(n));
        if (at >= 0) array[at] = item;
        else array.Add(item);
    }
}
