using CriShim.Runtime.Config;

namespace CriShim.Runtime.Oci;

/// <summary>The configured runtime handlers by name; "" means the default handler.</summary>
public sealed class RuntimeHandlers
{
    private readonly Dictionary<string, IOciRuntime> _byName;

    public RuntimeHandlers(RuntimeConfigSection runtime, StateConfig state)
        : this(runtime.DefaultHandler, runtime.Handlers.Select(h => new OciRuntime(h.Key, h.Value.Path,
            h.Value.Root.Length > 0 ? h.Value.Root : Path.Combine(state.RunRoot, h.Key))))
    {
    }

    public RuntimeHandlers(string defaultName, IEnumerable<IOciRuntime> runtimes)
    {
        DefaultName = defaultName;
        _byName = runtimes.ToDictionary(r => r.Handler);
    }

    public string DefaultName { get; }
    public IEnumerable<IOciRuntime> All => _byName.Values;
    public IOciRuntime Default => _byName[DefaultName];

    /// <summary>The handler a container or pod was created with; it may have left the configuration since.</summary>
    public IOciRuntime Of(string name) =>
        TryGet(name, out var runtime) ? runtime : throw new InvalidOperationException($"runtime handler \"{name}\" is no longer configured");

    public bool TryGet(string name, out IOciRuntime runtime) =>
        _byName.TryGetValue(name.Length == 0 ? DefaultName : name, out runtime!);
}
