using System.Security.Cryptography;
using System.Text;
using Runtime.V1;

namespace CriShim.Runtime.Images;

/// <summary>What the kubelet sends in a CRI AuthConfig, reduced to the forms a registry accepts.</summary>
public sealed record RegistryCredentials(string? Username, string? Password, string? IdentityToken, string? RegistryToken)
{
    public static readonly RegistryCredentials Anonymous = new(null, null, null, null);

    public bool HasPassword => !string.IsNullOrEmpty(Username);

    /// <summary>The host[:port] the kubelet gave the credentials for (AuthConfig.server_address), if it named one.</summary>
    public string? ServerHost { get; init; }

    /// <summary>These credentials where they belong, anonymous elsewhere.</summary>
    public RegistryCredentials For(bool belongs) => belongs ? this : Anonymous;

    /// <summary>Keys cached tokens, so one user's token is never sent for another's pull.</summary>
    public string Fingerprint { get; } = Convert.ToHexStringLower(SHA256.HashData(
        Encoding.UTF8.GetBytes($"{Username}\0{Password}\0{IdentityToken}\0{RegistryToken}")))[..16];

    public static RegistryCredentials From(AuthConfig? auth)
    {
        if (auth is null) return Anonymous;
        string username = auth.Username, password = auth.Password;
        if (auth.Auth.Length > 0)
        {
            // "auth" is base64("user:password"), as in a docker config.json.
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(auth.Auth));
            }
            catch (FormatException)
            {
                throw new InvalidRequestException("auth.auth is not valid base64");
            }
            int colon = decoded.IndexOf(':');
            if (colon < 0) throw new InvalidRequestException("auth.auth does not decode to user:password");
            (username, password) = (decoded[..colon], decoded[(colon + 1)..]);
        }
        // The token travels as is in the Authorization header, which takes only visible ASCII.
        if (!auth.RegistryToken.All(c => c is > ' ' and < '\u007f'))
        {
            throw new InvalidRequestException("auth.registry_token must be a bearer token of visible ASCII characters");
        }
        return new RegistryCredentials(NullIfEmpty(username), NullIfEmpty(password), NullIfEmpty(auth.IdentityToken), NullIfEmpty(auth.RegistryToken))
        {
            ServerHost = HostOf(auth.ServerAddress),
        };
    }

    /// <summary>"host[:port]" of a docker config key: "https://index.docker.io/v1/", "quay.io", "host:5000/path".</summary>
    private static string? HostOf(string serverAddress)
    {
        if (serverAddress.Length == 0) return null;
        string withScheme = serverAddress.Contains("://") ? serverAddress : "https://" + serverAddress;
        return Uri.TryCreate(withScheme, UriKind.Absolute, out var uri) ? uri.Authority : null;
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    public override string ToString() => HasPassword ? $"user {Username}" : IdentityToken is not null ? "identity token" : RegistryToken is not null ? "registry token" : "anonymous";
}
