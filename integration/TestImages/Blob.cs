using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace CriShim.TestImages;

/// <summary>Immutable content addressed by its sha256 digest: a layer, a config or a manifest.</summary>
public sealed class Blob
{
    public Blob(byte[] content)
    {
        Content = content;
        Digest = Sha256Digest(content);
    }

    public byte[] Content { get; }
    public string Digest { get; }
    public long Size => Content.LongLength;

    public Descriptor Describe(string mediaType, Platform? platform = null) => new(mediaType, Digest, Size, platform);

    public static Blob FromJson<T>(T value, JsonTypeInfo<T> typeInfo) => new(JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));

    public static string Sha256Digest(ReadOnlySpan<byte> content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));
}
