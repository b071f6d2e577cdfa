using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using CriShim.TestImages;

namespace CriShim.Integration.Harness;

/// <summary>
/// An in-process, anonymous registry on 127.0.0.1 (HttpListener) that serves the artifacts it is given
/// and misbehaves on request: corrupt a blob, hold blob downloads until released, stall a blob half
/// way, or never answer at all. It counts every GET, so tests can tell what was downloaded.
/// </summary>
public sealed class FaultyRegistry : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentDictionary<string, (byte[] Content, string MediaType)> _manifests = new();
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new();
    private readonly ConcurrentDictionary<string, int> _gets = new();
    private readonly ConcurrentDictionary<string, bool> _corrupt = new();
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();

    private FaultyRegistry(int port)
    {
        Port = port;
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _ = ServeAsync();
    }

    public int Port { get; }
    public string Host => $"127.0.0.1:{Port}";

    /// <summary>Blob downloads wait until <see cref="Release"/>.</summary>
    public bool HoldBlobs { get; set; }

    /// <summary>A blob whose download sends half its bytes and then waits until <see cref="Release"/>.</summary>
    public string? StallBlob { get; set; }

    /// <summary>Accepts requests and never answers them: a hung registry.</summary>
    public bool Hang { get; set; }

    /// <summary>Every manifest answer is a chunked body that never ends, until the client goes away.</summary>
    public bool EndlessManifests { get; set; }

    /// <summary>Completes when the stalled blob has sent its first half.</summary>
    public TaskCompletionSource Stalled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static FaultyRegistry Start()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new FaultyRegistry(port);
    }

    public string Reference(string repositoryAndTag) => $"{Host}/{repositoryAndTag}";

    /// <summary>Serves <paramref name="artifact"/> (and, for an index, each image in it) under <paramref name="tags"/>.</summary>
    public void Add(string repository, IManifestArtifact artifact, params string[] tags)
    {
        foreach (string key in tags.Append(artifact.Manifest.Digest)) _manifests[$"{repository}:{key}"] = (artifact.Manifest.Content, artifact.MediaType);
        foreach (var image in artifact.Images)
        {
            _manifests[$"{repository}:{image.Manifest.Digest}"] = (image.Manifest.Content, image.MediaType);
            _blobs[image.Config.Digest] = image.Config.Content;
            foreach (var layer in image.Layers) _blobs[layer.Blob.Digest] = layer.Blob.Content;
        }
    }

    public void Add(TestImage image) => Add(image.Repository, image.Artifact, [.. image.Tags]);

    /// <summary>Serves the blob with one byte flipped: same size, wrong digest.</summary>
    public void Corrupt(string digest, bool corrupt = true) => _corrupt[digest] = corrupt;

    public void Release() => _release.TrySetResult();

    /// <summary>How many GETs asked for the blob or manifest with this digest (or for this tag).</summary>
    public int Gets(string digestOrTag) => _gets.GetValueOrDefault(digestOrTag);

    public int ManifestGets => _gets.Where(pair => pair.Key.StartsWith("manifest ", StringComparison.Ordinal)).Sum(pair => pair.Value);

    private async Task ServeAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            _ = Task.Run(() => AnswerAsync(context));
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            if (Hang)
            {
                await Task.Delay(Timeout.Infinite, _stopping.Token);
            }
            string path = context.Request.Url!.AbsolutePath;
            if (path == "/v2/")
            {
                response.StatusCode = 200;
            }
            else if (Split(path, "/manifests/") is var (repository, reference))
            {
                _gets.AddOrUpdate("manifest " + reference, 1, (_, n) => n + 1);
                if (EndlessManifests)
                {
                    await SendEndlessAsync(response);
                    return;
                }
                if (_manifests.TryGetValue($"{repository}:{reference}", out var manifest))
                {
                    response.ContentType = manifest.MediaType;
                    response.AddHeader("Docker-Content-Digest", Blob.Sha256Digest(manifest.Content));
                    await response.OutputStream.WriteAsync(manifest.Content);
                }
                else
                {
                    await ErrorAsync(response, 404, "MANIFEST_UNKNOWN", "manifest unknown");
                }
            }
            else if (Split(path, "/blobs/") is var (_, digest))
            {
                _gets.AddOrUpdate(digest, 1, (_, n) => n + 1);
                if (!_blobs.TryGetValue(digest, out byte[]? content))
                {
                    await ErrorAsync(response, 404, "BLOB_UNKNOWN", "blob unknown");
                    return;
                }
                if (HoldBlobs) await _release.Task.WaitAsync(_stopping.Token);
                if (_corrupt.GetValueOrDefault(digest))
                {
                    content = (byte[])content.Clone();
                    content[content.Length / 2] ^= 0xff;
                }
                response.ContentType = "application/octet-stream";
                response.ContentLength64 = content.Length;
                if (digest == StallBlob)
                {
                    await response.OutputStream.WriteAsync(content.AsMemory(0, content.Length / 2));
                    await response.OutputStream.FlushAsync();
                    Stalled.TrySetResult();
                    await _release.Task.WaitAsync(_stopping.Token);
                    await response.OutputStream.WriteAsync(content.AsMemory(content.Length / 2));
                }
                else
                {
                    await response.OutputStream.WriteAsync(content);
                }
            }
            else
            {
                response.StatusCode = 404;
            }
        }
        catch (Exception) when (_stopping.IsCancellationRequested)
        {
            return;
        }
        catch (HttpListenerException)
        {
            // The client went away (a killed daemon): nothing to answer.
            return;
        }
        try
        {
            response.Close();
        }
        catch (HttpListenerException)
        {
        }
    }

    private async Task SendEndlessAsync(HttpListenerResponse response)
    {
        response.ContentType = "application/vnd.oci.image.manifest.v1+json";
        response.SendChunked = true;
        byte[] chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)' ');
        try
        {
            while (true) await response.OutputStream.WriteAsync(chunk, _stopping.Token);
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The client gave up, as it should.
        }
    }

    private static (string Repository, string Reference)? Split(string path, string marker)
    {
        int at = path.IndexOf(marker, StringComparison.Ordinal);
        return path.StartsWith("/v2/", StringComparison.Ordinal) && at > 4 ? (path[4..at], path[(at + marker.Length)..]) : null;
    }

    private static async Task ErrorAsync(HttpListenerResponse response, int status, string code, string message)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        await response.OutputStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes($$"""{"errors":[{"code":"{{code}}","message":"{{message}}"}]}"""));
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Close();
        _stopping.Dispose();
    }
}
