using CriShim.Runtime.Images;

namespace CriShim.Runtime.Tests.Images;

public class ImageReferenceTests
{
    private const string Digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("busybox", "docker.io", "library/busybox", "latest", null, "docker.io/library/busybox:latest")]
    [InlineData("library/busybox:1.36", "docker.io", "library/busybox", "1.36", null, "docker.io/library/busybox:1.36")]
    [InlineData("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", null, "docker.io/foo/bar:latest")]
    [InlineData("quay.io/a/b/c:v1", "quay.io", "a/b/c", "v1", null, "quay.io/a/b/c:v1")]
    [InlineData("localhost/app", "localhost", "app", "latest", null, "localhost/app:latest")]
    [InlineData("127.0.0.1:5000/app:dev", "127.0.0.1:5000", "app", "dev", null, "127.0.0.1:5000/app:dev")]
    [InlineData("busybox@" + Digest, "docker.io", "library/busybox", null, Digest, "docker.io/library/busybox@" + Digest)]
    [InlineData("busybox:1.36@" + Digest, "docker.io", "library/busybox", "1.36", Digest, "docker.io/library/busybox:1.36@" + Digest)]
    public void NormalizesAsDockerDoes(string input, string registry, string repository, string? tag, string? digest, string display)
    {
        var reference = ImageReference.Parse(input);
        Assert.Equal(registry, reference.Registry);
        Assert.Equal(repository, reference.Repository);
        Assert.Equal(tag, reference.Tag);
        Assert.Equal(digest, reference.Digest);
        Assert.Equal(display, reference.ToString());
        Assert.Equal(digest ?? tag, reference.ManifestReference);
    }

    [Fact]
    public void ADigestReferenceRecordsNoTag()
    {
        var reference = ImageReference.Parse("busybox:1.36@" + Digest);
        Assert.Null(reference.RepoTag);
        Assert.Equal("docker.io/library/busybox@" + Digest, reference.RepoDigest(Digest));
        Assert.Equal("docker.io/library/busybox:latest", ImageReference.Parse("busybox").RepoTag);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("Busybox", "repository name")]
    [InlineData("busybox:", "tag")]
    [InlineData("busybox:bad/tag", "registry")]
    [InlineData("busybox@sha256:abc", "digest")]
    [InlineData("busybox@md5:0123", "digest")]
    [InlineData("a//b", "repository name")]
    [InlineData("-leading/dash", "repository name")]
    // `$` would match before a trailing newline: every part of a reference is anchored at the end of input.
    [InlineData("busybox\n", "repository name")]
    [InlineData("busybox:latest\n", "tag")]
    [InlineData("my.registry\n/app", "registry")]
    [InlineData("busybox@" + Digest + "\n", "digest")]
    public void InvalidReferencesAreArgumentErrorsNamingThem(string input, string reason)
    {
        var e = Assert.Throws<InvalidRequestException>(() => ImageReference.Parse(input));
        Assert.Contains($"\"{input}\"", e.Message);
        Assert.Contains(reason, e.Message);
    }
}

public class ContentDigestTests
{
    [Fact]
    public void ADigestWithATrailingNewlineIsInvalid()
    {
        string digest = ContentDigest.Of("x"u8);
        Assert.True(ContentDigest.IsValid(digest));
        Assert.False(ContentDigest.IsValid(digest + "\n"));
        Assert.Throws<InvalidDataException>(() => ContentDigest.Require(digest + "\n", "blob"));
    }
}

public class RegistryEndpointsTests
{
    [Fact]
    public void LoopbackAndConfiguredHostsArePlainHttpOthersHttps()
    {
        var endpoints = new RegistryEndpoints(new Config.RegistriesConfig { Insecure = ["registry.lan:5000", "plain.example"] });
        Assert.Equal("http://127.0.0.1:5000/", endpoints.For("127.0.0.1:5000").Single().ToString());
        Assert.Equal("http://127.8.9.10/", endpoints.For("127.8.9.10").Single().ToString());
        Assert.Equal("http://localhost:5000/", endpoints.For("localhost:5000").Single().ToString());
        Assert.Equal("http://registry.lan:5000/", endpoints.For("registry.lan:5000").Single().ToString());
        Assert.Equal("http://plain.example:8080/", endpoints.For("plain.example:8080").Single().ToString());
        Assert.Equal("https://registry.lan:5001/", endpoints.For("registry.lan:5001").Single().ToString());
        Assert.Equal("https://quay.io/", endpoints.For("quay.io").Single().ToString());
    }

    [Fact]
    public void MirrorsComeFirstAndDockerHubIsReachedAtItsApiHost()
    {
        var endpoints = new RegistryEndpoints(new Config.RegistriesConfig
        {
            Mirrors = new() { ["docker.io"] = ["http://10.0.0.1:5000", "mirror.example"] },
        });
        Assert.Equal(["http://10.0.0.1:5000/", "https://mirror.example/", "https://registry-1.docker.io/"],
            endpoints.For("docker.io").Select(u => u.ToString()));
    }
}
