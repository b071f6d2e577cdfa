using System.Security.Cryptography;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// The kubelet streaming server's request cache: each Exec/Attach/PortForward RPC parks its request
/// under a random URL-safe token that is good for one connection within <see cref="Ttl"/>.
/// Bounded, so a client that never connects cannot grow it without limit.
/// </summary>
public sealed class StreamingTokenCache(TimeProvider time)
{
    public static readonly TimeSpan Ttl = TimeSpan.FromMinutes(1);
    public const int MaxInFlight = 1000;
    private const int TokenBytes = 8;

    private readonly Dictionary<string, (StreamingRequest Request, DateTimeOffset Expires)> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public StreamingTokenCache() : this(TimeProvider.System)
    {
    }

    public int Count
    {
        get
        {
            lock (_lock) return _entries.Count;
        }
    }

    /// <summary>Parks <paramref name="request"/>; the token is unguessable and fits in a URL path segment.</summary>
    public string Insert(StreamingRequest request)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            EvictExpired(now);
            if (_entries.Count >= MaxInFlight)
            {
                throw new InvalidOperationException($"too many streaming requests in flight (limit {MaxInFlight}); try again later");
            }
            while (true)
            {
                string token = Base64Url(RandomNumberGenerator.GetBytes(TokenBytes));
                if (_entries.TryAdd(token, (request, now + Ttl))) return token;
            }
        }
    }

    /// <summary>Takes the request out: a second use of the token, or one after expiry, finds nothing.</summary>
    public StreamingRequest? Consume(string token)
    {
        lock (_lock)
        {
            if (!_entries.Remove(token, out var entry)) return null;
            return entry.Expires > time.GetUtcNow() ? entry.Request : null;
        }
    }

    private void EvictExpired(DateTimeOffset now)
    {
        foreach (var (token, entry) in _entries.ToList())
        {
            if (entry.Expires <= now) _entries.Remove(token);
        }
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
