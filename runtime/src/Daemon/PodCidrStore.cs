using System.Text.Json;
using System.Text.Json.Serialization;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Daemon;

public sealed record NetworkRuntimeConfig([property: JsonPropertyName("pod_cidr")] string PodCidr);

[JsonSerializable(typeof(NetworkRuntimeConfig))]
internal sealed partial class NetworkRuntimeConfigJson : JsonSerializerContext;

/// <summary>The pod CIDR the kubelet pushes through UpdateRuntimeConfig, kept across restarts.</summary>
public sealed class PodCidrStore
{
    private readonly string _path;
    private readonly Lock _gate = new();
    private string _podCidr = "";

    public PodCidrStore(string stateRoot)
    {
        _path = Path.Combine(stateRoot, "network-runtime-config.json");
        if (File.Exists(_path))
        {
            _podCidr = JsonSerializer.Deserialize(File.ReadAllText(_path), NetworkRuntimeConfigJson.Default.NetworkRuntimeConfig)?.PodCidr ?? "";
        }
    }

    public string PodCidr
    {
        get
        {
            lock (_gate) return _podCidr;
        }
    }

    /// <summary>Records the CIDR; an empty value is ignored, as the kubelet sends it before it knows one.</summary>
    public void Update(string podCidr)
    {
        if (podCidr.Length == 0) return;
        if (!System.Net.IPNetwork.TryParse(podCidr, out _))
        {
            throw new InvalidRequestException($"pod_cidr \"{podCidr}\" is not a CIDR such as 10.88.0.0/16");
        }
        lock (_gate)
        {
            if (_podCidr == podCidr) return;
            AtomicFile.Write(_path, JsonSerializer.SerializeToUtf8Bytes(new NetworkRuntimeConfig(podCidr), NetworkRuntimeConfigJson.Default.NetworkRuntimeConfig));
            _podCidr = podCidr;
        }
    }
}
