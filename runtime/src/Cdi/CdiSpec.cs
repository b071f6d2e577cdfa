using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace CriShim.Runtime.Cdi;

public sealed record CdiDeviceNode(string Path, string HostPath, char? Type, long? Major, long? Minor, int? FileMode, string Permissions, uint? Uid, uint? Gid);

public sealed record CdiMount(string HostPath, string ContainerPath, string Type, List<string> Options);

public sealed record CdiHook(string HookName, string Path, List<string> Args, List<string> Env, int? Timeout);

/// <summary>What a spec or one of its devices adds to a container (CDI "containerEdits").</summary>
public sealed record CdiContainerEdits(List<string> Env, List<CdiDeviceNode> DeviceNodes, List<CdiMount> Mounts, List<CdiHook> Hooks, List<uint> AdditionalGids);

public sealed record CdiDevice(string Name, CdiContainerEdits Edits);

/// <summary>
/// One CDI spec file (Container Device Interface, versions 0.3.0 to 1.0.0), JSON or YAML. The file is
/// read whole under <see cref="MaxFileBytes"/>; its kind and device names are validated as the CDI
/// spec defines them; edits CriShim cannot apply (intelRdt, netDevices) are refused, not ignored.
/// </summary>
public sealed partial record CdiSpec(string File, string Version, string Kind, CdiContainerEdits Edits, List<CdiDevice> Devices)
{
    /// <summary>Real specs are a few KiB (a GPU node's: tens); the file is parsed in memory.</summary>
    public const int MaxFileBytes = 1024 * 1024;
    private const int MaxNodes = 100_000;
    private const int MaxDepth = 32;

    public static readonly string[] Versions = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0"];

    [GeneratedRegex("^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?/[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")]
    private static partial Regex KindPattern();

    [GeneratedRegex("^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$")]
    private static partial Regex DeviceNamePattern();

    public static bool IsValidKind(string kind) => kind.Length <= 253 && KindPattern().IsMatch(kind);

    public static bool IsValidDeviceName(string name) => name.Length <= 253 && DeviceNamePattern().IsMatch(name);

    /// <summary>Parses <paramref name="text"/>: JSON for a .json file, YAML (a superset) otherwise.</summary>
    public static CdiSpec Parse(string text, string file)
    {
        JsonNode? root;
        try
        {
            root = file.EndsWith(".json", StringComparison.Ordinal)
                ? JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = MaxDepth })
                : FromYaml(text);
        }
        catch (Exception e) when (e is JsonException or YamlDotNet.Core.YamlException)
        {
            throw new InvalidDataException($"{file}: not valid {(file.EndsWith(".json", StringComparison.Ordinal) ? "JSON" : "YAML")}: {e.Message}");
        }
        var spec = root as JsonObject ?? throw new InvalidDataException($"{file}: the spec is not an object");
        string version = Text(spec, "cdiVersion", file);
        if (!Versions.Contains(version))
        {
            throw new InvalidDataException($"{file}: cdiVersion \"{version}\" is not one CriShim reads ({string.Join(", ", Versions)})");
        }
        string kind = Text(spec, "kind", file);
        if (!IsValidKind(kind)) throw new InvalidDataException($"{file}: kind \"{kind}\" is not vendor/class");
        var devices = new List<CdiDevice>();
        foreach (var device in Objects(spec, "devices", file))
        {
            string name = Text(device, "name", file);
            if (!IsValidDeviceName(name)) throw new InvalidDataException($"{file}: device name \"{name}\" is not valid");
            if (devices.Any(d => d.Name == name)) throw new InvalidDataException($"{file}: device \"{name}\" is defined twice");
            devices.Add(new CdiDevice(name, ReadEdits(device["containerEdits"] as JsonObject, $"{file}: device {name}")));
        }
        if (devices.Count == 0) throw new InvalidDataException($"{file}: the spec defines no device");
        return new CdiSpec(file, version, kind, ReadEdits(spec["containerEdits"] as JsonObject, file), devices);
    }

    private static CdiContainerEdits ReadEdits(JsonObject? edits, string where)
    {
        if (edits is null) return new([], [], [], [], []);
        foreach (string unsupported in new[] { "intelRdt", "netDevices" })
        {
            if (edits[unsupported] is not null) throw new InvalidDataException($"{where}: containerEdits.{unsupported} is not supported by CriShim");
        }
        var env = Strings(edits, "env", where);
        if (env.FirstOrDefault(e => e.IndexOf('=') <= 0) is { } badEnv) throw new InvalidDataException($"{where}: env entry \"{badEnv}\" is not KEY=value");
        var nodes = Objects(edits, "deviceNodes", where).Select(node =>
        {
            string path = Absolute(node, "path", where);
            string? type = OptionalText(node, "type", where);
            if (type is not (null or "" or "c" or "b" or "u" or "p")) throw new InvalidDataException($"{where}: device node {path}: type \"{type}\" is not b, c, u or p");
            string permissions = OptionalText(node, "permissions", where) ?? "";
            if (permissions.Any(c => c is not ('r' or 'w' or 'm'))) throw new InvalidDataException($"{where}: device node {path}: permissions \"{permissions}\" must use only r, w and m");
            return new CdiDeviceNode(path, OptionalText(node, "hostPath", where) is { Length: > 0 } host ? RequireAbsolute(host, where) : path,
                type is { Length: 1 } t ? t[0] : null, Number(node, "major", where), Number(node, "minor", where),
                (int?)Number(node, "fileMode", where), permissions, (uint?)Number(node, "uid", where), (uint?)Number(node, "gid", where));
        }).ToList();
        var mounts = Objects(edits, "mounts", where).Select(mount => new CdiMount(Absolute(mount, "hostPath", where),
            Absolute(mount, "containerPath", where), OptionalText(mount, "type", where) ?? "", Strings(mount, "options", where))).ToList();
        var hooks = Objects(edits, "hooks", where).Select(hook =>
        {
            string name = Text(hook, "hookName", where);
            if (name is not ("prestart" or "createRuntime" or "createContainer" or "startContainer" or "poststart" or "poststop"))
            {
                throw new InvalidDataException($"{where}: hookName \"{name}\" is not an OCI hook");
            }
            return new CdiHook(name, Absolute(hook, "path", where), Strings(hook, "args", where), Strings(hook, "env", where), (int?)Number(hook, "timeout", where));
        }).ToList();
        var gids = (edits["additionalGids"] as JsonArray ?? []).Select(g => (uint)NumberOf(g, "additionalGids", where)).ToList();
        return new CdiContainerEdits(env, nodes, mounts, hooks, gids);
    }

    private static string Text(JsonObject node, string key, string where) =>
        OptionalText(node, key, where) ?? throw new InvalidDataException($"{where}: \"{key}\" is missing");

    private static string? OptionalText(JsonObject node, string key, string where) => node[key] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        JsonValue value when value.GetValueKind() == JsonValueKind.Number => value.ToJsonString(),
        _ => throw new InvalidDataException($"{where}: \"{key}\" is not a string"),
    };

    private static string Absolute(JsonObject node, string key, string where) => RequireAbsolute(Text(node, key, where), where);

    private static string RequireAbsolute(string path, string where) =>
        Path.IsPathRooted(path) && !path.Contains('\0') ? path : throw new InvalidDataException($"{where}: \"{path}\" is not an absolute path");

    private static long? Number(JsonObject node, string key, string where) => node[key] is { } value ? NumberOf(value, key, where) : null;

    private static long NumberOf(JsonNode? node, string key, string where) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<long>(out long number) && number >= 0 && number <= uint.MaxValue
            ? number
            : throw new InvalidDataException($"{where}: \"{key}\" is not a number in [0, {uint.MaxValue}]");

    private static List<string> Strings(JsonObject node, string key, string where) => node[key] switch
    {
        null => [],
        JsonArray array => array.Select(item => item is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new InvalidDataException($"{where}: \"{key}\" holds something else than strings")).ToList(),
        _ => throw new InvalidDataException($"{where}: \"{key}\" is not a list"),
    };

    private static IEnumerable<JsonObject> Objects(JsonObject node, string key, string where) => node[key] switch
    {
        null => [],
        JsonArray array => array.Select(item => item as JsonObject ?? throw new InvalidDataException($"{where}: \"{key}\" holds something else than objects")),
        _ => throw new InvalidDataException($"{where}: \"{key}\" is not a list"),
    };

    /// <summary>
    /// YAML to the JSON model, with plain integers as numbers. Aliases are expanded, so nodes and depth
    /// are counted: a few lines of nested aliases must not expand to gigabytes.
    /// </summary>
    private static JsonNode? FromYaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        if (stream.Documents.Count != 1) throw new InvalidDataException($"a spec file holds one YAML document, not {stream.Documents.Count}");
        int nodes = 0;
        JsonNode? Convert(YamlNode node, int depth)
        {
            if (++nodes > MaxNodes || depth > MaxDepth) throw new InvalidDataException($"the spec has more than {MaxNodes} nodes or is nested deeper than {MaxDepth}");
            switch (node)
            {
                case YamlMappingNode mapping:
                    var obj = new JsonObject();
                    foreach (var (key, value) in mapping.Children)
                    {
                        string name = (key as YamlScalarNode)?.Value ?? throw new InvalidDataException("a mapping key is not a scalar");
                        if (obj.ContainsKey(name)) throw new InvalidDataException($"key \"{name}\" appears twice");
                        obj[name] = Convert(value, depth + 1);
                    }
                    return obj;
                case YamlSequenceNode sequence:
                    return new JsonArray(sequence.Children.Select(child => Convert(child, depth + 1)).ToArray());
                case YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: var plain }:
                    return plain switch
                    {
                        null or "" or "~" or "null" => null,
                        "true" => JsonValue.Create(true),
                        "false" => JsonValue.Create(false),
                        _ when long.TryParse(plain, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long number) => JsonValue.Create(number),
                        _ => JsonValue.Create(plain),
                    };
                case YamlScalarNode scalar:
                    return JsonValue.Create(scalar.Value ?? "");
                default:
                    throw new InvalidDataException($"unsupported YAML node {node.NodeType}");
            }
        }
        return Convert(stream.Documents[0].RootNode, 0);
    }
}
