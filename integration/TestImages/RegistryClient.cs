using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace CriShim.TestImages;

/// <summary>
/// Pushes images over the OCI distribution API (plain HTTP, optional basic auth): a HEAD skips
/// blobs the repository has, a cross-repository mount reuses blobs pushed to another repository,
/// the rest is a monolithic upload (POST, then PUT with the digest). Blobs go up in parallel,
/// since the registry spends tens of milliseconds on each.
/// </summary>
public sealed class RegistryClient : IDisposable
{
    private readonly HttpClient _http;

    /// <summary>
    /// The first upload of each blob, finishing with the repository that has it: pushes that
    /// need the same blob wait for it and then mount it rather than uploading it again.
    /// </summary>
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _uploads = new();

    private const int Parallelism = 8;

    public RegistryClient(string host, NetworkCredential? credentials = null)
    {
        _http = new HttpClient { BaseAddress = new Uri($"http://{host}/"), Timeout = TimeSpan.FromMinutes(5) };
        if (credentials is not null)
        {
            string token = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.UserName}:{credentials.Password}"));
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", token);
        }
    }

    /// <summary>Pushes several repositories concurrently; blobs they share are uploaded once.</summary>
    public Task PushAsync(IEnumerable<TestImage> images, CancellationToken cancellationToken = default) =>
        Parallel.ForEachAsync(images, Options(cancellationToken), async (image, token) => await PushAsync(image, token));

    public Task PushAsync(TestImage image, CancellationToken cancellationToken = default) =>
        PushAsync(image.Repository, image.Artifact, image.Tags, cancellationToken);

    /// <summary>Pushes the blobs, then the manifests of an index's images by digest, then the top manifest under each tag.</summary>
    public async Task PushAsync(string repository, IManifestArtifact artifact, IEnumerable<string> tags, CancellationToken cancellationToken = default)
    {
        var blobs = artifact.Images
            .SelectMany(image => image.Layers.Select(layer => layer.Blob).Prepend(image.Config))
            .DistinctBy(blob => blob.Digest);
        await Parallel.ForEachAsync(blobs, Options(cancellationToken), async (blob, token) => await PushBlobAsync(repository, blob, token));
        foreach (var image in artifact.Images.Where(image => !ReferenceEquals(image, artifact)))
        {
            await PutManifestAsync(repository, image.Manifest.Digest, image, cancellationToken);
        }
        foreach (string tag in tags)
        {
            await PutManifestAsync(repository, tag, artifact, cancellationToken);
        }
    }

    public async Task<bool> BlobExistsAsync(string repository, string digest, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, $"v2/{repository}/blobs/{digest}");
        using var response = await _http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return false;
        await EnsureSuccessAsync(response, $"HEAD blob {digest} in {repository}", cancellationToken);
        return true;
    }

    private async Task PushBlobAsync(string repository, Blob blob, CancellationToken cancellationToken)
    {
        if (await BlobExistsAsync(repository, blob.Digest, cancellationToken)) return;
        var first = _uploads.GetOrAdd(blob.Digest, _ => new Lazy<Task<string>>(async () =>
        {
            await UploadBlobAsync(repository, blob, mountFrom: null, cancellationToken);
            return repository;
        }));
        string uploadedTo = await first.Value;
        if (uploadedTo != repository) await UploadBlobAsync(repository, blob, uploadedTo, cancellationToken);
    }

    /// <summary>POST starts an upload (or mounts the blob from another repository: 201), PUT sends it whole.</summary>
    private async Task UploadBlobAsync(string repository, Blob blob, string? mountFrom, CancellationToken cancellationToken)
    {
        string start = $"v2/{repository}/blobs/uploads/";
        if (mountFrom is not null) start += $"?mount={blob.Digest}&from={mountFrom}";
        using var started = await _http.PostAsync(start, content: null, cancellationToken);
        await EnsureSuccessAsync(started, $"start upload of {blob.Digest} to {repository}", cancellationToken);
        if (started.StatusCode == HttpStatusCode.Created) return;

        var location = started.Headers.Location
            ?? throw new HttpRequestException($"registry gave no upload location for {repository}");
        string separator = location.OriginalString.Contains('?') ? "&" : "?";
        var upload = new Uri(_http.BaseAddress!, location.OriginalString + separator + "digest=" + Uri.EscapeDataString(blob.Digest));
        using var content = new ByteArrayContent(blob.Content);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var finished = await _http.PutAsync(upload, content, cancellationToken);
        await EnsureSuccessAsync(finished, $"upload {blob.Digest} to {repository}", cancellationToken);
    }

    private static ParallelOptions Options(CancellationToken cancellationToken) =>
        new() { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken };

    private async Task PutManifestAsync(string repository, string reference, IManifestArtifact artifact, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(artifact.Manifest.Content);
        content.Headers.ContentType = new MediaTypeHeaderValue(artifact.MediaType);
        using var response = await _http.PutAsync($"v2/{repository}/manifests/{reference}", content, cancellationToken);
        await EnsureSuccessAsync(response, $"PUT manifest {repository}:{reference}", cancellationToken);
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string what, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode) return;
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        throw new HttpRequestException($"{what}: {(int)response.StatusCode} {response.ReasonPhrase} {body}".TrimEnd(), null, response.StatusCode);
    }

    public void Dispose() => _http.Dispose();
}
