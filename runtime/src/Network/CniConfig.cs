using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriShim.Runtime.Network;

/// <summary>One plugin of a network config list: its <c>type</c>, its raw JSON and the capabilities it declares.</summary>
public sealed class CniPluginConfig(string type, JsonObject raw)
{
    public string Type { get; } = type;
    /// <summary>The plugin's object as written in the file (without name/cniVersion/prevResult/runtimeConfig injection).</summary>
    public JsonObject Raw { get; } = raw;

    /// <summary>Capabilities set to true in the plugin's <c>capabilities</c> map (portMappings, bandwidth, dns, ipRanges, ...).</summary>
    public IReadOnlyList<string> Capabilities =>
        Raw["capabilities"] is JsonObject caps
            ? [.. caps.Where(kv => kv.Value is JsonValue v && v.TryGetValue(out bool b) && b).Select(kv => kv.Key)]
            : [];
}

/// <summary>A CNI network configuration list (a .conflist, or a single-plugin .conf wrapped as libcni does).</summary>
public sealed class CniNetworkConfigList
{
    public required string Name { get; init; }
    public required string CniVersion { get; init; }
    public required IReadOnlyList<CniPluginConfig> Plugins { get; init; }
    /// <summary>The file it came from; empty when built from a cache entry.</summary>
    public string SourceFile { get; init; } = "";

    /// <summary>The list as JSON, for the result cache (DEL must work even when the file changed or vanished).</summary>
    public JsonObject ToJson() => new()
    {
        ["cniVersion"] = CniVersion,
        ["name"] = Name,
        ["plugins"] = new JsonArray([.. Plugins.Select(p => (JsonNode)p.Raw.DeepClone())]),
    };
}

/// <summary>Parses CNI network configs and picks the one the node uses.</summary>
public static class CniConfigLoader
{
    /// <summary>The spec versions whose configs and results CriShim speaks.</summary>
    public static readonly IReadOnlyList<string> SupportedVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

    /// <summary>The extensions the kubelet convention (and libcni's ConfFiles) accepts.</summary>
    public static readonly IReadOnlyList<string> Extensions = [".conflist", ".conf", ".json"];

    /// <summary>The placeholder replaced by the pod CIDR from UpdateRuntimeConfig (containerd's template name).</summary>
    public static readonly IReadOnlyList<string> PodCidrPlaceholders = ["{{.PodCIDR}}", "{{ .PodCIDR }}"];

    /// <summary>Config files in lexical (ordinal) order; empty when the directory does not exist.</summary>
    public static IReadOnlyList<string> ConfigFiles(string confDir)
    {
        if (!Directory.Exists(confDir)) return [];
        return [.. Directory.EnumerateFiles(confDir)
            .Where(f => Extensions.Contains(Path.GetExtension(f)) && !Path.GetFileName(f).StartsWith('.'))
            .Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Loads the first config file of <paramref name="confDir"/>. Returns the list, or why there is none
    /// usable: no file, an unreadable/invalid first file, or a pod CIDR placeholder with no CIDR yet.
    /// </summary>
    public static CniConfigSelection Select(string confDir, string podCidr)
    {
        var files = ConfigFiles(confDir);
        if (files.Count == 0) return CniConfigSelection.Problem($"no network config found in {confDir}");
        string file = files[0];
        string name = Path.GetFileName(file);
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return CniConfigSelection.Problem($"{name}: cannot read {file}: {e.Message}");
        }
        if (PodCidrPlaceholders.Any(text.Contains))
        {
            if (podCidr.Length == 0)
            {
                return CniConfigSelection.Problem($"{name}: uses {{{{.PodCIDR}}}} but no pod CIDR has been set through UpdateRuntimeConfig yet");
            }
            foreach (string placeholder in PodCidrPlaceholders) text = text.Replace(placeholder, podCidr, StringComparison.Ordinal);
        }
        try
        {
            return CniConfigSelection.Of(Parse(text, file));
        }
        catch (CniConfigException e)
        {
            return CniConfigSelection.Problem($"{name}: {e.Message}");
        }
    }

    /// <summary>
    /// Parses a .conflist (an object with <c>plugins</c>) or a single-plugin .conf (an object with <c>type</c>),
    /// the latter wrapped into a list as libcni's ConfListFromConf does.
    /// </summary>
    public static CniNetworkConfigList Parse(string json, string sourceFile = "")
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new CniConfigException($"invalid JSON: {e.Message}");
        }
        if (root is not JsonObject obj) throw new CniConfigException("invalid network config: not a JSON object");
        string name = StringField(obj, "name");
        if (name.Length == 0) throw new CniConfigException("invalid network config: no \"name\"");
        string version = StringField(obj, "cniVersion");
        if (version.Length == 0) throw new CniConfigException($"network \"{name}\": no \"cniVersion\"");
        if (!SupportedVersions.Contains(version))
        {
            throw new CniConfigException($"network \"{name}\": cniVersion {version} is not supported (supported: {string.Join(", ", SupportedVersions)})");
        }

        var plugins = new List<CniPluginConfig>();
        if (obj["plugins"] is JsonNode pluginsNode)
        {
            if (pluginsNode is not JsonArray array || array.Count == 0)
            {
                throw new CniConfigException($"network \"{name}\": \"plugins\" must be a non-empty list");
            }
            for (int i = 0; i < array.Count; i++)
            {
                if (array[i] is not JsonObject plugin) throw new CniConfigException($"network \"{name}\": plugin {i} is not a JSON object");
                plugins.Add(Plugin(name, i, (JsonObject)plugin.DeepClone()));
            }
        }
        else if (obj.ContainsKey("type"))
        {
            var single = (JsonObject)obj.DeepClone();
            single.Remove("name");
            single.Remove("cniVersion");
            plugins.Add(Plugin(name, 0, single));
        }
        else
        {
            throw new CniConfigException($"network \"{name}\": neither \"plugins\" nor \"type\"");
        }
        return new CniNetworkConfigList { Name = name, CniVersion = version, Plugins = plugins, SourceFile = sourceFile };
    }

    private static CniPluginConfig Plugin(string network, int index, JsonObject plugin)
    {
        string type = StringField(plugin, "type");
        if (type.Length == 0) throw new CniConfigException($"network \"{network}\": plugin {index} has no \"type\"");
        if (type.Contains('/') || type is "." or "..") throw new CniConfigException($"network \"{network}\": plugin type \"{type}\" is not a plain name");
        if (plugin["capabilities"] is { } caps && caps is not JsonObject)
        {
            throw new CniConfigException($"network \"{network}\": plugin \"{type}\" has \"capabilities\" that is not an object");
        }
        return new CniPluginConfig(type, plugin);
    }

    private static string StringField(JsonObject obj, string key) =>
        obj[key] is JsonValue value && value.TryGetValue(out string? text) ? text : "";

    /// <summary>The first <paramref name="binDirs"/> entry holding the plugin, or null.</summary>
    public static string? FindPlugin(string type, IReadOnlyList<string> binDirs)
    {
        foreach (string dir in binDirs)
        {
            string candidate = Path.Combine(dir, type);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Null when every plugin of the list is installed; otherwise which is missing and where it was looked for.</summary>
    public static string? MissingPlugin(CniNetworkConfigList list, IReadOnlyList<string> binDirs)
    {
        foreach (var plugin in list.Plugins)
        {
            if (FindPlugin(plugin.Type, binDirs) is null)
            {
                string source = list.SourceFile.Length > 0 ? Path.GetFileName(list.SourceFile) : $"network \"{list.Name}\"";
                return $"{source}: plugin '{plugin.Type}' not found in {string.Join(", ", binDirs)}";
            }
        }
        return null;
    }
}

/// <summary>The config the node uses, or the reason it has none.</summary>
public sealed record CniConfigSelection(CniNetworkConfigList? Network, string? Reason)
{
    public static CniConfigSelection Of(CniNetworkConfigList network) => new(network, null);
    public static CniConfigSelection Problem(string reason) => new(null, reason);
}

/// <summary>A network config file that cannot be used.</summary>
public sealed class CniConfigException(string message) : Exception(message);
