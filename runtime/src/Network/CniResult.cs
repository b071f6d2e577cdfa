using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriShim.Runtime.Network;

/// <summary>An interface a plugin reported; <see cref="Sandbox"/> is the netns path for ones inside the pod.</summary>
public sealed record CniInterface(string Name, string Mac, string Sandbox);

/// <summary>An address a plugin assigned: the CIDR as written, the bare IP, and the interface index when given.</summary>
public sealed record CniIpConfig(IPAddress Address, int PrefixLength, string? Gateway, int? Interface);

/// <summary>
/// A CNI ADD result: 1.0.0 and 0.3.x/0.4.0 (<c>interfaces</c>, <c>ips</c> with an optional <c>version</c>),
/// and the legacy 0.1.0/0.2.0 form (<c>ip4</c>/<c>ip6</c>). The raw JSON is kept for prevResult and the cache.
/// </summary>
public sealed class CniResult
{
    public required string CniVersion { get; init; }
    public required IReadOnlyList<CniInterface> Interfaces { get; init; }
    public required IReadOnlyList<CniIpConfig> Ips { get; init; }
    public required JsonObject Raw { get; init; }

    public static CniResult Parse(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"result is not JSON: {e.Message}");
        }
        return Parse(node as JsonObject ?? throw new FormatException("result is not a JSON object"));
    }

    public static CniResult Parse(JsonObject raw)
    {
        string version = raw["cniVersion"] is JsonValue v && v.TryGetValue(out string? s) ? s : "";
        var interfaces = new List<CniInterface>();
        if (raw["interfaces"] is JsonArray ifs)
        {
            foreach (var item in ifs)
            {
                if (item is not JsonObject i) continue;
                interfaces.Add(new CniInterface(Str(i, "name") ?? "", Str(i, "mac") ?? "", Str(i, "sandbox") ?? ""));
            }
        }
        var ips = new List<CniIpConfig>();
        if (raw["ips"] is JsonArray list)
        {
            foreach (var item in list)
            {
                if (item is not JsonObject ip) continue;
                string address = Str(ip, "address") ?? throw new FormatException("an entry of \"ips\" has no \"address\"");
                int? index = ip["interface"] is JsonValue iv && iv.TryGetValue(out int n) ? n : null;
                ips.Add(Address(address, Str(ip, "gateway"), index));
            }
        }
        // 0.1.0/0.2.0
        foreach (string legacy in new[] { "ip4", "ip6" })
        {
            if (raw[legacy] is JsonObject old && Str(old, "ip") is { } cidr) ips.Add(Address(cidr, Str(old, "gateway"), null));
        }
        return new CniResult { CniVersion = version, Interfaces = interfaces, Ips = ips, Raw = raw };
    }

    private static CniIpConfig Address(string cidr, string? gateway, int? index)
    {
        int slash = cidr.IndexOf('/');
        string ipText = slash < 0 ? cidr : cidr[..slash];
        if (!IPAddress.TryParse(ipText, out var ip)) throw new FormatException($"\"{cidr}\" is not an IP address");
        int prefix = ip.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (slash >= 0 && !int.TryParse(cidr[(slash + 1)..], out prefix)) throw new FormatException($"\"{cidr}\" has a bad prefix length");
        return new CniIpConfig(ip, prefix, gateway, index);
    }

    private static string? Str(JsonObject obj, string key) =>
        obj[key] is JsonValue value && value.TryGetValue(out string? text) ? text : null;

    /// <summary>
    /// The pod's IPs, primary first: addresses on the pod's own interface (<paramref name="ifName"/> in a
    /// sandbox) when the result says which interface an address is on, else every address; loopback
    /// addresses dropped; IPv4 before IPv6 (as containerd picks the primary); no duplicates.
    /// </summary>
    public IReadOnlyList<string> PodIps(string ifName)
    {
        bool OnPodInterface(CniIpConfig ip) =>
            ip.Interface is int i && i >= 0 && i < Interfaces.Count && Interfaces[i].Sandbox.Length > 0 && Interfaces[i].Name == ifName;

        var candidates = Ips.Any(OnPodInterface) ? Ips.Where(OnPodInterface) : Ips;
        return [.. candidates
            .Where(ip => !IPAddress.IsLoopback(ip.Address))
            .OrderBy(ip => ip.Address.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)
            .Select(ip => ip.Address.ToString())
            .Distinct()];
    }
}

/// <summary>A CNI error result: <c>{"cniVersion", "code", "msg", "details"}</c>.</summary>
public sealed record CniError(int Code, string Msg, string Details)
{
    /// <summary>The spec's well-known codes, for messages.</summary>
    public static string CodeName(int code) => code switch
    {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        50 => "plugin not available",
        _ => code >= 100 ? "plugin-specific error" : "error",
    };

    /// <summary>Parses a plugin's error output; null when it is not a CNI error object.</summary>
    public static CniError? TryParse(string output)
    {
        if (output.Trim().Length == 0) return null;
        try
        {
            if (JsonNode.Parse(output) is not JsonObject obj) return null;
            if (obj["msg"] is not JsonValue msgValue || !msgValue.TryGetValue(out string? msg)) return null;
            int code = obj["code"] is JsonValue c && c.TryGetValue(out int n) ? n : 0;
            string details = obj["details"] is JsonValue d && d.TryGetValue(out string? text) ? text : "";
            return new CniError(code, msg, details);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
