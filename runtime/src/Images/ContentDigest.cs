using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace CriShim.Runtime.Images;

/// <summary>sha256 content digests ("sha256:&lt;64 lower-case hex&gt;"), the only algorithm registries use in practice.</summary>
public static partial class ContentDigest
{
    public const string Prefix = "sha256:";

    public static bool IsValid(string digest) => Sha256Pattern().IsMatch(digest);

    /// <summary>Throws when a digest from a manifest is malformed, before it is used in a path or URL.</summary>
    public static string Require(string? digest, string what) =>
        digest is not null && IsValid(digest) ? digest : throw new InvalidDataException($"{what} has an invalid digest \"{digest}\"");

    public static string Of(ReadOnlySpan<byte> content) => Prefix + Convert.ToHexStringLower(SHA256.HashData(content));

    public static string FromHash(IncrementalHash hash) => Prefix + Convert.ToHexStringLower(hash.GetHashAndReset());

    /// <summary>The hex part, used as a file name.</summary>
    public static string Hex(string digest) => digest[Prefix.Length..];

    [GeneratedRegex(@"^sha256:[a-f0-9]{64}\z")]
    private static partial Regex Sha256Pattern();
}
