using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// status.dump: the container's CRI ContainerStatus, which containerd 2.x's restore reads besides config.dump
/// and spec.dump (it refuses an archive without it: `failed to read "status.dump"`). Written as containerd
/// writes it, Go's encoding/json of the generated struct: proto field names, enums and 64-bit integers as
/// JSON numbers (protobuf's own JSON quotes 64-bit integers, which encoding/json will not read into an int64).
/// CRI-O and checkpointctl ignore the file.
/// </summary>
public static class ContainerdStatusDump
{
    public const string FileName = "status.dump";

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default
        .WithPreserveProtoFieldNames(true)
        .WithFormatEnumsAsIntegers(true));

    public static byte[] Of(ContainerStatus status)
    {
        var json = JsonNode.Parse(Formatter.Format(status))!.AsObject();
        Unquote64BitIntegers(json, ContainerStatus.Descriptor);
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private static void Unquote64BitIntegers(JsonObject json, MessageDescriptor descriptor)
    {
        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            // ContainerStatus's maps (labels, annotations) map strings to strings.
            if (field.IsMap || !json.TryGetPropertyValue(field.Name, out var value) || value is null) continue;
            JsonNode?[] values = field.IsRepeated ? [.. value.AsArray()] : [value];
            switch (field.FieldType)
            {
                case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 or FieldType.UInt64 or FieldType.Fixed64:
                    json[field.Name] = field.IsRepeated
                        ? new JsonArray([.. values.Select(Number)])
                        : Number(value);
                    break;
                case FieldType.Message:
                    foreach (var message in values.OfType<JsonObject>()) Unquote64BitIntegers(message, field.MessageType);
                    break;
            }
        }
    }

    /// <summary>A quoted integer as a number; its text is kept as is, so uint64 values beyond long stay exact.</summary>
    private static JsonNode Number(JsonNode? quoted) =>
        JsonNode.Parse(quoted!.GetValue<string>()) ?? throw new FormatException("a 64-bit integer field is null");
}
