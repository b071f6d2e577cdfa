using Google.Protobuf.Collections;

namespace CriShim.Runtime.Store;

/// <summary>The CRI list filters' label_selector: every selector pair must be among the labels.</summary>
public static class LabelSelector
{
    public static bool Matches(MapField<string, string> labels, MapField<string, string> selector) =>
        selector.All(kv => labels.TryGetValue(kv.Key, out var value) && value == kv.Value);
}
