using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriShim.Runtime.Config;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(CriShimConfig))]
internal sealed partial class ConfigJsonContext : JsonSerializerContext;

public static class ConfigJson
{
    /// <summary>The effective configuration, with the same key names as the TOML file.</summary>
    public static string Serialize(CriShimConfig config) =>
        JsonSerializer.Serialize(config, ConfigJsonContext.Default.CriShimConfig);
}
