using System.Text.Json;
using System.Text.Json.Nodes;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Network;

/// <summary>
/// What DEL needs to undo an ADD, written before the ADD starts and updated with its result (as libcni's
/// result cache): the exact config list used, CNI_ARGS, the capability args and, once known, the result.
/// </summary>
public sealed class CniCacheEntry
{
    public const string Kind = "crishim-cni-cache-v1";

    public required string ContainerId { get; init; }
    public required string IfName { get; init; }
    public required string NetNs { get; init; }
    public required string CniArgs { get; init; }
    public required CniNetworkConfigList Network { get; init; }
    public required JsonObject CapabilityArgs { get; init; }
    /// <summary>The final ADD result; null while the ADD runs or when it failed part-way.</summary>
    public JsonObject? Result { get; set; }
    /// <summary>After a failed ADD, how many plugins (in list order) it reached; null means all (e.g. a crash mid-ADD).</summary>
    public int? PluginsStarted { get; set; }

    public JsonObject ToJson() => new()
    {
        ["kind"] = Kind,
        ["containerId"] = ContainerId,
        ["ifName"] = IfName,
        ["netns"] = NetNs,
        ["cniArgs"] = CniArgs,
        ["sourceFile"] = Network.SourceFile,
        ["config"] = Network.ToJson(),
        ["capabilityArgs"] = CapabilityArgs.DeepClone(),
        ["result"] = Result?.DeepClone(),
        ["pluginsStarted"] = PluginsStarted,
    };

    public static CniCacheEntry FromJson(JsonObject json)
    {
        string Str(string key) => json[key] is JsonValue v && v.TryGetValue(out string? s) ? s : throw new FormatException($"cache entry has no \"{key}\"");
        if (Str("kind") != Kind) throw new FormatException($"cache entry kind is not {Kind}");
        string source = json["sourceFile"] is JsonValue sv && sv.TryGetValue(out string? sf) ? sf : "";
        var config = json["config"] as JsonObject ?? throw new FormatException("cache entry has no \"config\"");
        var network = CniConfigLoader.Parse(config.ToJsonString(), source);
        return new CniCacheEntry
        {
            ContainerId = Str("containerId"),
            IfName = Str("ifName"),
            NetNs = Str("netns"),
            CniArgs = Str("cniArgs"),
            Network = network,
            CapabilityArgs = json["capabilityArgs"] is JsonObject caps ? (JsonObject)caps.DeepClone() : [],
            Result = json["result"] is JsonObject result ? (JsonObject)result.DeepClone() : null,
            PluginsStarted = json["pluginsStarted"] is JsonValue started && started.TryGetValue(out int n) ? n : null,
        };
    }
}

/// <summary>Cache entries as &lt;dir&gt;/&lt;pod id&gt;.json, written atomically; they survive daemon restarts.</summary>
public sealed class CniResultCache(string directory)
{
    public string Directory { get; } = directory;

    public string PathOf(string containerId) => Path.Combine(Directory, containerId + ".json");

    public void Save(CniCacheEntry entry) => AtomicFile.WriteText(PathOf(entry.ContainerId), entry.ToJson().ToJsonString());

    /// <summary>The entry, or null when none; an unreadable entry is an error (DEL must not silently skip it).</summary>
    public CniCacheEntry? Load(string containerId)
    {
        string path = PathOf(containerId);
        if (!File.Exists(path)) return null;
        try
        {
            return CniCacheEntry.FromJson(JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException("not a JSON object"));
        }
        catch (Exception e) when (e is JsonException or FormatException or CniConfigException)
        {
            throw new InvalidDataException($"CNI cache entry {path} is unreadable: {e.Message}", e);
        }
    }

    public void Delete(string containerId) => File.Delete(PathOf(containerId));

    public IEnumerable<string> ContainerIds() =>
        System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.EnumerateFiles(Directory, "*.json").Select(f => Path.GetFileNameWithoutExtension(f)!)
            : [];
}
