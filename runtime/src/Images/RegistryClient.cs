using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Images;

/// <summary>A registry answered with an error that is neither "not found" nor an authentication failure.</summary>
public sealed class RegistryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A manifest as fetched: its bytes, the media type the registry declared, and their digest.</summary>
public sealed record FetchedManifest(byte[] Content, string? MediaType, string Digest);

/// <summary>
/// The OCI distribution API over one shared HttpClient: the WWW-Authenticate challenge flow (Basic and
/// Bearer, tokens cached per endpoint, scope and credentials), retries with backoff on connection
/// failures, 5xx and 429. Redirects to blob storage are followed by the handler, which drops the
/// Authorization header when it leaves the registry's host.
/// </summary>
public sealed partial class RegistryClient(HttpClient http, RegistryEndpoints endpoints, ILogger<RegistryClient> logger)
{
    private const int MaxAttempts = 4;
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan TokenExpiryMargin = TimeSpan.FromSeconds(10);
    // Tokens are a few KiB (JWTs); error bodies only feed a message.
    private const int MaxTokenResponseBytes = 1024 * 1024;
    private const int MaxErrorBodyBytes = 64 * 1024;

    private readonly ConcurrentDictionary<string, CachedAuthorization> _authorizations = new();

    private sealed record CachedAuthorization(AuthenticationHeaderValue Header, DateTimeOffset Expires);

    public RegistryRepository Open(ImageReference reference, RegistryCredentials credentials) =>
        new(this, endpoints.For(reference.Registry), reference,
            endpoint => credentials.For(endpoints.MayReceiveCredentials(reference.Registry, credentials, endpoint)));

    /// <summary>GET {endpoint}v2/{repository}/{path}, authenticated as the registry demands.</summary>
    internal async Task<HttpResponseMessage> GetAsync(
        Uri endpoint, string repository, string path, IReadOnlyList<string> accept, RegistryCredentials credentials, CancellationToken cancellationToken)
    {
        var uri = new Uri(endpoint, $"v2/{repository}/{path}");
        string scope = $"repository:{repository}:pull";
        string cacheKey = $"{endpoint.Authority}|{scope}|{credentials.Fingerprint}";
        bool answeredChallenge = false;
        while (true)
        {
            var authorization = credentials.RegistryToken is { } registryToken
                ? new AuthenticationHeaderValue("Bearer", registryToken)
                : _authorizations.TryGetValue(cacheKey, out var cached) && cached.Expires > DateTimeOffset.UtcNow ? cached.Header : null;
            var response = await SendWithRetriesAsync(() =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, uri);
                foreach (string mediaType in accept) request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(mediaType));
                request.Headers.Authorization = authorization;
                return request;
            }, endpoint.Authority, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Unauthorized) return response;

            using (response)
            {
                if (answeredChallenge || credentials.RegistryToken is not null)
                {
                    throw new UnauthenticatedException(
                        $"registry {endpoint.Authority} rejected the credentials ({credentials}) for {repository}: {await ErrorDetailAsync(response, cancellationToken)}");
                }
                _authorizations[cacheKey] = await AnswerChallengeAsync(response, endpoint, scope, credentials, cancellationToken);
                answeredChallenge = true;
            }
        }
    }

    private async Task<CachedAuthorization> AnswerChallengeAsync(
        HttpResponseMessage response, Uri endpoint, string scope, RegistryCredentials credentials, CancellationToken cancellationToken)
    {
        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault()
            ?? throw new RegistryException($"registry {endpoint.Authority} answered 401 without a WWW-Authenticate challenge");
        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (!credentials.HasPassword)
            {
                throw new UnauthenticatedException($"registry {endpoint.Authority} requires a username and password, and the pull gave none");
            }
            string basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.Username}:{credentials.Password}"));
            return new CachedAuthorization(new AuthenticationHeaderValue("Basic", basic), DateTimeOffset.MaxValue);
        }
        if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            throw new RegistryException($"registry {endpoint.Authority} asks for unsupported authentication scheme {challenge.Scheme}");
        }
        var parameters = ParseChallenge(challenge.Parameter ?? "");
        if (!parameters.TryGetValue("realm", out string? realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri))
        {
            throw new RegistryException($"registry {endpoint.Authority} sent a Bearer challenge without a valid realm: {challenge.Parameter}");
        }
        parameters.TryGetValue("service", out string? service);
        return await FetchTokenAsync(realmUri, service, parameters.GetValueOrDefault("scope", scope),
            credentials.For(endpoints.MayReceiveCredentials(endpoint, realmUri)), cancellationToken);
    }

    private async Task<CachedAuthorization> FetchTokenAsync(
        Uri realm, string? service, string scope, RegistryCredentials credentials, CancellationToken cancellationToken)
    {
        var query = new List<KeyValuePair<string, string>> { new("scope", scope) };
        if (service is not null) query.Add(new("service", service));
        using var response = await SendWithRetriesAsync(() =>
        {
            if (credentials.IdentityToken is { } refreshToken)
            {
                // An identity token is an OAuth2 refresh token, exchanged by POST (Docker's token spec).
                return new HttpRequestMessage(HttpMethod.Post, realm)
                {
                    Content = new FormUrlEncodedContent([.. query, new("grant_type", "refresh_token"), new("refresh_token", refreshToken), new("client_id", "crishim")]),
                };
            }
            var request = new HttpRequestMessage(HttpMethod.Get, new UriBuilder(realm)
            {
                Query = string.Join('&', query.Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}")),
            }.Uri);
            if (credentials.HasPassword)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                    Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.Username}:{credentials.Password}")));
            }
            return request;
        }, realm.Authority, cancellationToken);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            throw new UnauthenticatedException($"token server {realm.Authority} refused {credentials} for {scope}: {await ErrorDetailAsync(response, cancellationToken)}");
        }
        if (!response.IsSuccessStatusCode)
        {
            throw new RegistryException($"token server {realm.Authority} answered {(int)response.StatusCode}: {await ErrorDetailAsync(response, cancellationToken)}");
        }
        byte[] body = await ReadBodyAsync(response, MaxTokenResponseBytes, $"the answer of token server {realm.Authority}", cancellationToken);
        var token = JsonSerializer.Deserialize(body, ImageJsonContext.Default.TokenResponse);
        string value = token?.Token ?? token?.AccessToken ?? throw new RegistryException($"token server {realm.Authority} answered without a token");
        var lifetime = TimeSpan.FromSeconds(Math.Max(token!.ExpiresIn ?? 60, 60));
        return new CachedAuthorization(new AuthenticationHeaderValue("Bearer", value), DateTimeOffset.UtcNow + lifetime - TokenExpiryMargin);
    }

    /// <summary>Sends, retrying connection failures, 5xx and 429 with exponential backoff; returns any other answer.</summary>
    private async Task<HttpResponseMessage> SendWithRetriesAsync(Func<HttpRequestMessage> build, string host, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            using var request = build();
            string failure;
            try
            {
                var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                if (!IsRetriable(response.StatusCode) || attempt == MaxAttempts) return response;
                failure = $"HTTP {(int)response.StatusCode}";
                response.Dispose();
            }
            catch (HttpRequestException e) when (!cancellationToken.IsCancellationRequested)
            {
                if (attempt == MaxAttempts) throw new RegistryException($"cannot reach registry {host}: {e.Message}", e);
                failure = e.Message;
            }
            var delay = FirstBackoff * Math.Pow(2, attempt - 1);
            logger.LogWarning("{Method} {Uri} failed ({Failure}); retry {Attempt}/{Max} in {Delay} ms",
                request.Method, request.RequestUri, failure, attempt, MaxAttempts - 1, delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken);
        }
    }

    private static bool IsRetriable(HttpStatusCode status) =>
        status == HttpStatusCode.TooManyRequests || ((int)status >= 500 && status != HttpStatusCode.NotImplemented);

    /// <summary>
    /// A body of at most <paramref name="limit"/> bytes, read with the caller's cancellation; a longer one is
    /// refused, by its Content-Length or as soon as its bytes pass the limit.
    /// </summary>
    internal static async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, int limit, string what, CancellationToken cancellationToken)
    {
        var refusal = LimitExceededException.Over(what, limit);
        if (response.Content.Headers.ContentLength > limit) throw refusal;
        var body = await ReadUpToAsync(response, limit, cancellationToken);
        if (body.Truncated) throw refusal;
        return body.Bytes.ToArray();
    }

    private static async Task<CappedBuffer> ReadUpToAsync(HttpResponseMessage response, int limit, CancellationToken cancellationToken)
    {
        var body = new CappedBuffer(limit);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        await body.FillUntilTruncatedAsync(stream, cancellationToken);
        return body;
    }

    /// <summary>The registry's error codes and messages, or the status line when the body is not the API's JSON.</summary>
    internal static async Task<string> ErrorDetailAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string body = "";
        try
        {
            // Only the start of a long body is read: it is a message, and a huge one would not be read at all.
            body = Encoding.UTF8.GetString((await ReadUpToAsync(response, MaxErrorBodyBytes, cancellationToken)).Bytes.Span);
            var errors = JsonSerializer.Deserialize(body, ImageJsonContext.Default.RegistryErrorBody)?.Errors;
            if (errors is { Count: > 0 }) return string.Join("; ", errors.Select(e => $"{e.Code}: {e.Message}"));
        }
        catch (JsonException)
        {
        }
        string status = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
        return body.Length == 0 ? status : $"{status}: {(body.Length > 200 ? body[..200] : body)}";
    }

    internal static Dictionary<string, string> ParseChallenge(string parameter) =>
        ChallengeParameter().Matches(parameter).ToDictionary(m => m.Groups[1].Value.ToLowerInvariant(), m => m.Groups[2].Value);

    [GeneratedRegex("(\\w+)=\"([^\"]*)\"")]
    private static partial Regex ChallengeParameter();
}

/// <summary>One repository of one registry, for the length of a pull; remembers which endpoint (mirror) served it.</summary>
public sealed class RegistryRepository(RegistryClient client, IReadOnlyList<Uri> endpoints, ImageReference reference,
    Func<Uri, RegistryCredentials> credentialsFor)
{
    /// <summary>As containerd: a manifest or index is metadata, never megabytes.</summary>
    private const int MaxManifestBytes = 4 * 1024 * 1024;
    private Uri? _resolved;

    public ImageReference Reference => reference;

    /// <summary>The manifest or index for a tag or digest; tries mirrors in order, the registry last.</summary>
    public async Task<FetchedManifest> GetManifestAsync(string tagOrDigest, CancellationToken cancellationToken)
    {
        Exception? last = null;
        foreach (var endpoint in _resolved is null ? endpoints : [_resolved])
        {
            try
            {
                using var response = await client.GetAsync(endpoint, reference.Repository, $"manifests/{tagOrDigest}", MediaTypes.AcceptedManifests, credentialsFor(endpoint), cancellationToken);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    last = new NotFoundException($"image \"{reference}\" not found: {endpoint.Authority} has no manifest {tagOrDigest} in {reference.Repository} ({await RegistryClient.ErrorDetailAsync(response, cancellationToken)})");
                    continue;
                }
                await EnsureSuccessAsync(response, $"manifest {tagOrDigest}", endpoint, cancellationToken);
                byte[] content = await RegistryClient.ReadBodyAsync(response, MaxManifestBytes,
                    $"manifest {tagOrDigest} of {reference.Name} from {endpoint.Authority}", cancellationToken);
                _resolved = endpoint;
                return new FetchedManifest(content, response.Content.Headers.ContentType?.MediaType, ContentDigest.Of(content));
            }
            catch (Exception e) when (e is RegistryException or LimitExceededException or UnauthenticatedException && endpoint != endpoints[^1])
            {
                // A failing mirror (or one wanting credentials it is not given) is skipped, as containerd does;
                // the registry itself is the last word.
                last = e;
            }
        }
        throw last!;
    }

    /// <summary>Opens a blob's body; the caller verifies digest and size while reading it.</summary>
    public async Task<Stream> OpenBlobAsync(string digest, CancellationToken cancellationToken)
    {
        var endpoint = _resolved ?? endpoints[^1];
        var response = await client.GetAsync(endpoint, reference.Repository, $"blobs/{digest}", [], credentialsFor(endpoint), cancellationToken);
        try
        {
            await EnsureSuccessAsync(response, $"blob {digest}", endpoint, cancellationToken);
            return await response.Content.ReadAsStreamAsync(cancellationToken);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task EnsureSuccessAsync(HttpResponseMessage response, string what, Uri endpoint, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode) return;
        throw new RegistryException($"{endpoint.Authority} answered {(int)response.StatusCode} for {what} of {reference.Name}: {await RegistryClient.ErrorDetailAsync(response, cancellationToken)}");
    }
}
