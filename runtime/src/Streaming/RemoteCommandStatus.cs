using System.Text;
using System.Text.Json;
using CriShim.Runtime.Oci;

namespace CriShim.Runtime.Streaming;

/// <summary>How a remote command ended: an exit code, or an error that kept it from running.</summary>
public readonly record struct RemoteCommandResult(int ExitCode, string? Error = null)
{
    public static RemoteCommandResult Failed(string error) => new(-1, error);
    public bool Succeeded => Error is null && ExitCode == 0;
}

/// <summary>
/// The error-channel message of remotecommand protocol v4 and v5: a metav1.Status, "Success" or a
/// "Failure" whose NonZeroExitCode reason carries the exit code as the cause ExitCode (what
/// client-go turns into exec.CodeExitError). Earlier protocols get the plain error text.
/// </summary>
public static class RemoteCommandStatus
{
    public static byte[] V4Json(RemoteCommandResult result, IReadOnlyList<string>? command = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteEndObject();
            if (result.Succeeded)
            {
                json.WriteString("status", "Success");
            }
            else if (result.Error is { } error)
            {
                json.WriteString("status", "Failure");
                json.WriteString("message", error);
                json.WriteString("reason", "InternalError");
                json.WriteStartObject("details");
                json.WriteStartArray("causes");
                json.WriteStartObject();
                json.WriteString("message", error);
                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
                json.WriteNumber("code", 500);
            }
            else
            {
                string what = command is { Count: > 0 } ? $"error executing command [{string.Join(' ', command)}], exit code {result.ExitCode}" : $"exit code {result.ExitCode}";
                json.WriteString("status", "Failure");
                json.WriteString("message", $"command terminated with non-zero exit code: {what}");
                json.WriteString("reason", "NonZeroExitCode");
                json.WriteStartObject("details");
                json.WriteStartArray("causes");
                json.WriteStartObject();
                json.WriteString("reason", "ExitCode");
                json.WriteString("message", result.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture));
                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>Protocols before v4 carry only failures, as text.</summary>
    public static byte[]? LegacyText(RemoteCommandResult result) =>
        result.Succeeded ? null
        : Encoding.UTF8.GetBytes(result.Error ?? $"command terminated with non-zero exit code: exit code {result.ExitCode}");
}

/// <summary>
/// Decodes the resize channel: a stream of JSON objects {"Width":w,"Height":h}, possibly split or
/// concatenated across frames. The objects are flat, so each ends at a '}'.
/// </summary>
public sealed class TerminalSizeDecoder
{
    private readonly List<byte> _pending = [];

    public IEnumerable<TerminalSize> Feed(ReadOnlySpan<byte> data)
    {
        var sizes = new List<TerminalSize>();
        foreach (byte b in data)
        {
            _pending.Add(b);
            if (b != (byte)'}') continue;
            byte[] message = [.. _pending];
            _pending.Clear();
            if (TryParse(message, out var size)) sizes.Add(size);
        }
        if (_pending.Count > 64 * 1024) _pending.Clear();
        return sizes;
    }

    public static bool TryParse(ReadOnlySpan<byte> json, out TerminalSize size)
    {
        size = default;
        try
        {
            var reader = new Utf8JsonReader(json);
            int width = 0, height = 0;
            string? property = null;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        property = reader.GetString();
                        break;
                    case JsonTokenType.Number when property is not null:
                        int value = reader.TryGetInt32(out int v) ? v : 0;
                        if (property.Equals("Width", StringComparison.OrdinalIgnoreCase)) width = value;
                        else if (property.Equals("Height", StringComparison.OrdinalIgnoreCase)) height = value;
                        property = null;
                        break;
                }
            }
            if (width <= 0 || height <= 0 || width > ushort.MaxValue || height > ushort.MaxValue) return false;
            size = new TerminalSize((ushort)width, (ushort)height);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
