using CriShim.Runtime.Config;

namespace CriShim.Runtime.Oci;

/// <summary>The configured runtime handlers by name; "" means the default handler.</summary>
public sealed class RuntimeHandlers
{
    private readonly Dictionary<string, OciRuntime> _byName;

    public RuntimeHandlers(CriShimConfig config)
    {
        DefaultName = config.Runtime.DefaultHandler;
        _byName = config.Runtime.Handlers.ToDictionary(
            h => h.Key,
            h => new OciRuntime(h.Key, h.Value.Path,
                h.Value.Root.Length > 0 ? h.Value.Root : Path.Combine(config.State.RunRoot, h.Key)));
    }

    public string DefaultName { get; }
    public IEnumerable<OciRuntime> All => _byName.Values;
    public OciRuntime Default => _byName[DefaultName];

    public bool TryGet(string name, out OciRuntime runtime) =>
        _byName.TryGetValue(name.Length == 0 ? DefaultName : name, out runtime!);
}
