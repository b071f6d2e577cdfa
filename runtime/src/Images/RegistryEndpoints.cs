using System.Net;
using CriShim.Runtime.Config;

namespace CriShim.Runtime.Images;

/// <summary>
/// Where a registry is reached: its configured mirrors in order, then the registry itself, over https
/// unless the host is configured insecure or is loopback (as Docker treats localhost and 127.0.0.0/8).
/// </summary>
public sealed class RegistryEndpoints(RegistriesConfig config)
{
    private const string DockerHubEndpoint = "registry-1.docker.io";

    public IReadOnlyList<Uri> For(string registry)
    {
        var endpoints = new List<Uri>();
        if (config.Mirrors.TryGetValue(registry, out var mirrors))
        {
            endpoints.AddRange(mirrors.Select(ToBaseUri));
        }
        endpoints.Add(ToBaseUri(registry == ImageReference.DockerHub ? DockerHubEndpoint : registry));
        return endpoints;
    }

    /// <summary>"host[:port]" or a URL with a scheme, as the base that "/v2/..." is appended to.</summary>
    private Uri ToBaseUri(string endpoint)
    {
        string withScheme = endpoint.Contains("://") ? endpoint : $"{(IsPlainHttp(endpoint) ? "http" : "https")}://{endpoint}";
        if (!Uri.TryCreate(withScheme.TrimEnd('/') + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new InvalidRequestException($"registry endpoint \"{endpoint}\" is not a host[:port] or an http(s) URL");
        }
        return uri;
    }

    /// <summary>
    /// Whether a pull's credentials may go to <paramref name="endpoint"/>: the registry's own endpoint, or the host
    /// the kubelet gave them for; never a mirror otherwise, as a mirror is another party.
    /// </summary>
    public bool MayReceiveCredentials(string registry, RegistryCredentials credentials, Uri endpoint) =>
        endpoint == For(registry)[^1] || SameHost(credentials.ServerHost, endpoint);

    /// <summary>
    /// Whether a token server named by <paramref name="endpoint"/>'s challenge may receive the credentials: one on
    /// the endpoint's own host, or a configured one; and never over plain HTTP from an https registry.
    /// </summary>
    public bool MayReceiveCredentials(Uri endpoint, Uri realm) =>
        (realm.Scheme == Uri.UriSchemeHttps || endpoint.Scheme == Uri.UriSchemeHttp)
        && (realm.Host.Equals(endpoint.Host, StringComparison.OrdinalIgnoreCase)
            || config.TokenRealms.Any(host => SameHost(host, realm)));

    private static bool SameHost(string? hostAndPort, Uri uri) =>
        hostAndPort is not null && (hostAndPort.Equals(uri.Authority, StringComparison.OrdinalIgnoreCase) || hostAndPort.Equals(uri.Host, StringComparison.OrdinalIgnoreCase));

    public bool IsPlainHttp(string hostAndPort)
    {
        if (config.Insecure.Contains(hostAndPort)) return true;
        string host = HostOf(hostAndPort);
        if (config.Insecure.Contains(host)) return true;
        return host == "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));
    }

    private static string HostOf(string hostAndPort)
    {
        if (hostAndPort.StartsWith('[')) return hostAndPort[..(hostAndPort.IndexOf(']') + 1)];
        int colon = hostAndPort.LastIndexOf(':');
        return colon < 0 ? hostAndPort : hostAndPort[..colon];
    }
}
