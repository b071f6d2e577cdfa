using System.Text;

namespace CriShim.NativeInterop;

/// <summary>A NUL-terminated UTF-8 copy of a string for passing to libc.</summary>
internal static class Utf8Path
{
    public static byte[]? From(string? value) =>
        value is null ? null : Encoding.UTF8.GetBytes(value + '\0');
}
