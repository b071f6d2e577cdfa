using System.Net;
using System.Text;
using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Images;

/// <summary>A scripted registry: each request is answered by the test's function and recorded.</summary>
internal sealed class ScriptedHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
{
    public List<string> Requests { get; } = [];

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (Requests) Requests.Add($"{request.Method} {request.RequestUri} {request.Headers.Authorization}");
        return Task.FromResult(answer(request));
    }

    public static HttpResponseMessage Json(HttpStatusCode status, string body, string? challenge = null)
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (challenge is not null) response.Headers.TryAddWithoutValidation("WWW-Authenticate", challenge);
        return response;
    }
}

public class RegistryClientTests
{
    private const string Manifest = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}""";

    private static RegistryClient Client(ScriptedHandler handler, RegistriesConfig? config = null) =>
        new(new HttpClient(handler), new RegistryEndpoints(config ?? new RegistriesConfig()), NullLogger<RegistryClient>.Instance);

    [Fact]
    public async Task BearerChallengeIsAnsweredOnceAndTheTokenIsReusedForTheScope()
    {
        var handler = new ScriptedHandler(request =>
        {
            if (request.RequestUri!.Host == "auth.example")
            {
                Assert.Equal("Basic", request.Headers.Authorization?.Scheme);
                Assert.Contains("scope=repository%3Ateam%2Fapp%3Apull", request.RequestUri.Query);
                Assert.Contains("service=registry.example", request.RequestUri.Query);
                return ScriptedHandler.Json(HttpStatusCode.OK, """{"token":"t0k3n","expires_in":300}""");
            }
            return request.Headers.Authorization?.ToString() == "Bearer t0k3n"
                ? ScriptedHandler.Json(HttpStatusCode.OK, Manifest)
                : ScriptedHandler.Json(HttpStatusCode.Unauthorized, "{}",
                    """Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull" """);
        });
        var client = Client(handler, new RegistriesConfig { TokenRealms = ["auth.example"] });
        var credentials = new RegistryCredentials("me", "secret", null, null);
        var repository = client.Open(ImageReference.Parse("registry.example/team/app:v1"), credentials);
        var first = await repository.GetManifestAsync("v1", CancellationToken.None);
        var second = await client.Open(ImageReference.Parse("registry.example/team/app:v2"), credentials).GetManifestAsync("v2", CancellationToken.None);
        Assert.Equal(ContentDigest.Of(Encoding.UTF8.GetBytes(Manifest)), first.Digest);
        Assert.Equal(first.Digest, second.Digest);
        Assert.Single(handler.Requests, r => r.Contains("auth.example"));
        Assert.Equal(4, handler.Requests.Count); // 401, token, manifest v1, manifest v2 with the cached token
    }

    [Fact]
    public async Task BasicChallengeWithoutCredentialsAndWrongCredentialsAreUnauthenticated()
    {
        var handler = new ScriptedHandler(request => request.Headers.Authorization?.Parameter == Convert.ToBase64String("me:right"u8.ToArray())
            ? ScriptedHandler.Json(HttpStatusCode.OK, Manifest)
            : ScriptedHandler.Json(HttpStatusCode.Unauthorized, """{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""", "Basic realm=\"r\""));
        var client = Client(handler);
        var reference = ImageReference.Parse("127.0.0.1:5000/app");
        var none = await Assert.ThrowsAsync<UnauthenticatedException>(() => client.Open(reference, RegistryCredentials.Anonymous).GetManifestAsync("latest", CancellationToken.None));
        Assert.Contains("requires a username and password", none.Message);
        var wrong = await Assert.ThrowsAsync<UnauthenticatedException>(() => client.Open(reference, new("me", "wrong", null, null)).GetManifestAsync("latest", CancellationToken.None));
        Assert.Contains("rejected the credentials (user me)", wrong.Message);
        Assert.Contains("UNAUTHORIZED: authentication required", wrong.Message);
        Assert.DoesNotContain("wrong", wrong.Message);
        await client.Open(reference, new("me", "right", null, null)).GetManifestAsync("latest", CancellationToken.None);
        Assert.StartsWith("GET http://127.0.0.1:5000/v2/app/manifests/latest", handler.Requests[0]);
    }

    [Fact]
    public async Task ServerErrorsAreRetriedAndAMissingManifestIsNotFound()
    {
        int calls = 0;
        var handler = new ScriptedHandler(_ => ++calls < 3
            ? new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)
            : ScriptedHandler.Json(HttpStatusCode.NotFound, """{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"""));
        var e = await Assert.ThrowsAsync<NotFoundException>(() =>
            Client(handler).Open(ImageReference.Parse("localhost:1/nope:gone"), RegistryCredentials.Anonymous).GetManifestAsync("gone", CancellationToken.None));
        Assert.Equal(3, calls);
        Assert.Contains("localhost:1/nope:gone", e.Message);
        Assert.Contains("MANIFEST_UNKNOWN", e.Message);
    }

    [Fact]
    public async Task AFailingMirrorFallsBackToTheRegistry()
    {
        var handler = new ScriptedHandler(request => request.RequestUri!.Host == "10.0.0.9"
            ? ScriptedHandler.Json(HttpStatusCode.NotFound, "{}")
            : ScriptedHandler.Json(HttpStatusCode.OK, Manifest));
        var config = new RegistriesConfig { Mirrors = new() { ["docker.io"] = ["http://10.0.0.9:5000"] } };
        var repository = Client(handler, config).Open(ImageReference.Parse("busybox"), RegistryCredentials.Anonymous);
        await repository.GetManifestAsync("latest", CancellationToken.None);
        Assert.StartsWith("GET http://10.0.0.9:5000/v2/library/busybox/manifests/latest", handler.Requests[0]);
        Assert.StartsWith("GET https://registry-1.docker.io/v2/library/busybox/manifests/latest", handler.Requests[1]);
    }

    [Fact]
    public async Task ARegistryTokenIsSentAsBearerWithoutAChallenge()
    {
        var handler = new ScriptedHandler(_ => ScriptedHandler.Json(HttpStatusCode.OK, Manifest));
        await Client(handler).Open(ImageReference.Parse("quay.io/a/b"), new RegistryCredentials(null, null, null, "reg-token"))
            .GetManifestAsync("latest", CancellationToken.None);
        Assert.EndsWith("Bearer reg-token", Assert.Single(handler.Requests));
    }

    [Fact]
    public async Task ATokenRealmOnAnotherHostThatIsNotConfiguredGetsNoCredentials()
    {
        var handler = new ScriptedHandler(request => request.RequestUri!.Host switch
        {
            "collector.example" => ScriptedHandler.Json(HttpStatusCode.OK, """{"token":"anonymous"}"""),
            _ => request.Headers.Authorization?.ToString() == "Bearer anonymous"
                ? ScriptedHandler.Json(HttpStatusCode.OK, Manifest)
                : ScriptedHandler.Json(HttpStatusCode.Unauthorized, "{}", """Bearer realm="https://collector.example/token",service="registry.example" """),
        });
        await Client(handler).Open(ImageReference.Parse("registry.example/team/app"), new RegistryCredentials("me", "secret", "refresh", null))
            .GetManifestAsync("latest", CancellationToken.None);
        string tokenRequest = Assert.Single(handler.Requests, r => r.Contains("collector.example"));
        Assert.StartsWith("GET ", tokenRequest);
        Assert.EndsWith(" ", tokenRequest); // no Authorization header, and no refresh token POSTed
    }

    [Fact]
    public async Task AMirrorGetsNoCredentialsUnlessTheyWereGivenForIt()
    {
        var seen = new List<string>();
        var handler = new ScriptedHandler(request =>
        {
            if (request.RequestUri!.Host == "mirror.example")
            {
                lock (seen) seen.Add(request.Headers.Authorization?.ToString() ?? "");
                return ScriptedHandler.Json(HttpStatusCode.Unauthorized, "{}", "Basic realm=\"mirror\"");
            }
            return request.Headers.Authorization is null
                ? ScriptedHandler.Json(HttpStatusCode.Unauthorized, "{}", "Basic realm=\"registry\"")
                : ScriptedHandler.Json(HttpStatusCode.OK, Manifest);
        });
        var config = new RegistriesConfig { Mirrors = new() { ["registry.example"] = ["https://mirror.example"] } };
        var client = Client(handler, config);
        var credentials = new RegistryCredentials("me", "secret", null, "reg-token");
        await client.Open(ImageReference.Parse("registry.example/app"), credentials).GetManifestAsync("latest", CancellationToken.None);
        Assert.Equal([""], seen);
        Assert.Contains(handler.Requests, r => r.StartsWith("GET https://registry.example/", StringComparison.Ordinal) && r.EndsWith("Bearer reg-token", StringComparison.Ordinal));

        // Credentials the kubelet gave for the mirror's host do go there.
        seen.Clear();
        await client.Open(ImageReference.Parse("registry.example/app"), new RegistryCredentials("me", "secret", null, null) { ServerHost = "mirror.example" })
            .GetManifestAsync("latest", CancellationToken.None);
        Assert.Contains("Basic " + Convert.ToBase64String("me:secret"u8.ToArray()), seen);
    }

    [Theory]
    [InlineData("https://index.docker.io/v1/", "index.docker.io")]
    [InlineData("quay.io", "quay.io")]
    [InlineData("localhost:5000/team", "localhost:5000")]
    [InlineData("", null)]
    public void AuthConfigServerAddressNamesTheHostTheCredentialsAreFor(string serverAddress, string? host) =>
        Assert.Equal(host, RegistryCredentials.From(new global::Runtime.V1.AuthConfig { Username = "u", ServerAddress = serverAddress }).ServerHost);

    [Fact]
    public void AuthConfigAuthFieldIsDecodedToUserAndPassword()
    {
        var credentials = RegistryCredentials.From(new global::Runtime.V1.AuthConfig { Auth = Convert.ToBase64String("user:pa:ss"u8.ToArray()) });
        Assert.Equal("user", credentials.Username);
        Assert.Equal("pa:ss", credentials.Password);
        Assert.DoesNotContain("pa:ss", credentials.ToString());
        Assert.Throws<InvalidRequestException>(() => RegistryCredentials.From(new global::Runtime.V1.AuthConfig { Auth = "!!" }));
    }

    private const int ManifestLimit = 4 * 1024 * 1024;

    private static HttpResponseMessage Body(HttpStatusCode status, Stream body) => new(status) { Content = new StreamContent(body) };

    [Fact]
    public async Task AManifestOverFourMiBIsRefusedWithoutReadingItAll()
    {
        var endless = new EndlessStream();
        var handler = new ScriptedHandler(_ => Body(HttpStatusCode.OK, endless));
        var repository = Client(handler).Open(ImageReference.Parse("127.0.0.1:5000/huge"), RegistryCredentials.Anonymous);
        var e = await Assert.ThrowsAsync<LimitExceededException>(() => repository.GetManifestAsync("latest", CancellationToken.None));
        Assert.Contains("manifest latest", e.Message);
        Assert.InRange(endless.BytesRead, ManifestLimit + 1, ManifestLimit + 1024 * 1024);

        // A declared length over the limit is refused before any byte is read.
        var declared = new EndlessStream();
        var announced = new ScriptedHandler(_ =>
        {
            var response = Body(HttpStatusCode.OK, declared);
            response.Content.Headers.ContentLength = ManifestLimit + 1;
            return response;
        });
        await Assert.ThrowsAsync<LimitExceededException>(() =>
            Client(announced).Open(ImageReference.Parse("127.0.0.1:5000/huge"), RegistryCredentials.Anonymous).GetManifestAsync("latest", CancellationToken.None));
        Assert.Equal(0, declared.BytesRead);

        // Exactly at the limit is a manifest.
        var atLimit = new ScriptedHandler(_ => Body(HttpStatusCode.OK, new MemoryStream(new byte[ManifestLimit])));
        var fetched = await Client(atLimit).Open(ImageReference.Parse("127.0.0.1:5000/big"), RegistryCredentials.Anonymous).GetManifestAsync("latest", CancellationToken.None);
        Assert.Equal(ManifestLimit, fetched.Content.Length);
    }

    [Fact]
    public async Task AnEndlessErrorBodyStillGivesAnError()
    {
        var endless = new EndlessStream();
        var handler = new ScriptedHandler(_ => Body(HttpStatusCode.BadRequest, endless));
        var e = await Assert.ThrowsAsync<RegistryException>(() =>
            Client(handler).Open(ImageReference.Parse("127.0.0.1:5000/app"), RegistryCredentials.Anonymous).GetManifestAsync("latest", CancellationToken.None));
        Assert.Contains("answered 400", e.Message);
        Assert.InRange(endless.BytesRead, 1, 1024 * 1024);
    }

    private static ScriptedHandler TokenServer(Stream tokenBody) => new(request => request.RequestUri!.Host == "auth.example"
        ? Body(HttpStatusCode.OK, tokenBody)
        : ScriptedHandler.Json(HttpStatusCode.Unauthorized, "{}", """Bearer realm="https://auth.example/token",service="registry.example" """));

    [Fact]
    public async Task AnEndlessTokenIsRefused()
    {
        var endless = new EndlessStream();
        var e = await Assert.ThrowsAsync<LimitExceededException>(() =>
            Client(TokenServer(endless)).Open(ImageReference.Parse("registry.example/app"), RegistryCredentials.Anonymous).GetManifestAsync("v1", CancellationToken.None));
        Assert.Contains("token server auth.example", e.Message);
        Assert.InRange(endless.BytesRead, 1, 2 * 1024 * 1024);
    }

    [Fact]
    public async Task AStalledTokenOrManifestBodyHonoursCancellation()
    {
        using var tokenLimit = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Client(TokenServer(new EndlessStream(stalled: true))).Open(ImageReference.Parse("registry.example/app"), RegistryCredentials.Anonymous)
                .GetManifestAsync("v1", tokenLimit.Token));

        using var manifestLimit = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var stalledManifest = new ScriptedHandler(_ => Body(HttpStatusCode.OK, new EndlessStream(stalled: true)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Client(stalledManifest).Open(ImageReference.Parse("127.0.0.1:5000/app"), RegistryCredentials.Anonymous).GetManifestAsync("latest", manifestLimit.Token));
    }
}

/// <summary>
/// A response body that never ends, counting what was read of it; or, stalled, one that sends nothing until
/// the reader gives up (a synchronous reader, which cannot give up, gets an empty body after 20 s).
/// </summary>
internal sealed class EndlessStream(bool stalled = false) : Stream
{
    private long _bytesRead;

    public long BytesRead => Interlocked.Read(ref _bytesRead);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (stalled) await Task.Delay(Timeout.Infinite, cancellationToken);
        return Fill(buffer.Span);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count)
    {
        if (stalled)
        {
            Thread.Sleep(TimeSpan.FromSeconds(20));
            return 0;
        }
        return Fill(buffer.AsSpan(offset, count));
    }

    private int Fill(Span<byte> buffer)
    {
        buffer.Fill((byte)'x');
        Interlocked.Add(ref _bytesRead, buffer.Length);
        return buffer.Length;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
