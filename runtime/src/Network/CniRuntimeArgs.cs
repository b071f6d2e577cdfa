using System.Globalization;
using System.Text.Json.Nodes;
using Runtime.V1;

namespace CriShim.Runtime.Network;

/// <summary>What a pod contributes to a CNI call: CNI_ARGS, capability args (runtimeConfig) and the per-plugin stdin.</summary>
public static class CniRuntimeArgs
{
    public const string IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth";
    public const string EgressBandwidthAnnotation = "kubernetes.io/egress-bandwidth";
    public const string PodAnnotationsCapability = "io.kubernetes.cri.pod-annotations";

    /// <summary><c>IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..</c></summary>
    public static string CniArgs(PodSandboxMetadata metadata, string podId)
    {
        var pairs = new (string Key, string Value)[]
        {
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", metadata.Namespace),
            ("K8S_POD_NAME", metadata.Name),
            ("K8S_POD_INFRA_CONTAINER_ID", podId),
            ("K8S_POD_UID", metadata.Uid),
        };
        foreach (var (key, value) in pairs)
        {
            if (value.Contains(';') || value.Contains('='))
            {
                throw new InvalidRequestException($"pod {key} \"{value}\" cannot be passed in CNI_ARGS (contains ';' or '=')");
            }
        }
        return string.Join(';', pairs.Select(p => $"{p.Key}={p.Value}"));
    }

    /// <summary>
    /// The capability args libcni offers plugins through <c>runtimeConfig</c>: portMappings, bandwidth (from the
    /// pod's bandwidth annotations), dns, ipRanges (the pod CIDR) and the pod annotations. Absent ones are left out.
    /// </summary>
    public static JsonObject CapabilityArgs(PodSandboxConfig pod, string podCidr)
    {
        var args = new JsonObject();
        var ports = new JsonArray();
        foreach (var mapping in pod.PortMappings)
        {
            if (mapping.HostPort <= 0) continue; // containerPort-only entries are informational
            var entry = new JsonObject
            {
                ["hostPort"] = mapping.HostPort,
                ["containerPort"] = mapping.ContainerPort,
                ["protocol"] = mapping.Protocol switch
                {
                    Protocol.Udp => "udp",
                    Protocol.Sctp => "sctp",
                    _ => "tcp",
                },
            };
            if (mapping.HostIp.Length > 0) entry["hostIP"] = mapping.HostIp;
            ports.Add((JsonNode)entry);
        }
        if (ports.Count > 0) args["portMappings"] = ports;

        var bandwidth = new JsonObject();
        if (pod.Annotations.TryGetValue(IngressBandwidthAnnotation, out string? ingress))
        {
            bandwidth["ingressRate"] = BitsPerSecond(IngressBandwidthAnnotation, ingress);
            bandwidth["ingressBurst"] = uint.MaxValue; // no burst limit, as containerd and CRI-O pass
        }
        if (pod.Annotations.TryGetValue(EgressBandwidthAnnotation, out string? egress))
        {
            bandwidth["egressRate"] = BitsPerSecond(EgressBandwidthAnnotation, egress);
            bandwidth["egressBurst"] = uint.MaxValue;
        }
        if (bandwidth.Count > 0) args["bandwidth"] = bandwidth;

        if (pod.DnsConfig is { } dns && (dns.Servers.Count > 0 || dns.Searches.Count > 0 || dns.Options.Count > 0))
        {
            args["dns"] = new JsonObject
            {
                ["servers"] = new JsonArray([.. dns.Servers.Select(s => (JsonNode)s)]),
                ["searches"] = new JsonArray([.. dns.Searches.Select(s => (JsonNode)s)]),
                ["options"] = new JsonArray([.. dns.Options.Select(s => (JsonNode)s)]),
            };
        }

        if (podCidr.Length > 0)
        {
            args["ipRanges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = podCidr }));
        }

        var annotations = new JsonObject();
        foreach (var (key, value) in pod.Annotations.OrderBy(kv => kv.Key, StringComparer.Ordinal)) annotations[key] = value;
        args[PodAnnotationsCapability] = annotations;
        return args;
    }

    /// <summary>
    /// The stdin of one plugin, as libcni's buildOneConfig: the plugin's object plus the list's name and
    /// cniVersion, <c>prevResult</c> when there is one, and <c>runtimeConfig</c> holding exactly the
    /// capability args the plugin declares (replacing any static one, only when there is something to pass).
    /// </summary>
    public static JsonObject PluginConfig(CniPluginConfig plugin, string networkName, string cniVersion, JsonObject? prevResult, JsonObject capabilityArgs)
    {
        var config = (JsonObject)plugin.Raw.DeepClone();
        config["name"] = networkName;
        config["cniVersion"] = cniVersion;
        if (prevResult is not null) config["prevResult"] = prevResult.DeepClone();
        var runtimeConfig = new JsonObject();
        foreach (string capability in plugin.Capabilities)
        {
            if (capabilityArgs[capability] is { } value) runtimeConfig[capability] = value.DeepClone();
        }
        if (runtimeConfig.Count > 0) config["runtimeConfig"] = runtimeConfig;
        return config;
    }

    /// <summary>A Kubernetes quantity ("10M", "1Gi", "500k", "100000") as bits per second.</summary>
    public static long BitsPerSecond(string annotation, string quantity)
    {
        string text = quantity.Trim();
        (string Suffix, double Factor)[] suffixes =
        [
            ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40), ("Pi", 1L << 50),
            ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("m", 1e-3),
        ];
        double factor = 1;
        foreach (var (suffix, f) in suffixes)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal))
            {
                factor = f;
                text = text[..^suffix.Length];
                break;
            }
        }
        if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double number) || text.Length == 0)
        {
            throw new InvalidRequestException($"pod annotation {annotation}=\"{quantity}\" is not a quantity such as 10M");
        }
        double bits = Math.Ceiling(number * factor);
        if (bits < 1 || bits > 32e15) // the limits the kubelet's bandwidth shaping accepts: 1 bit to 32 Pbit
        {
            throw new InvalidRequestException($"pod annotation {annotation}=\"{quantity}\" is out of range (1 to 32P bits per second)");
        }
        return (long)bits;
    }
}
