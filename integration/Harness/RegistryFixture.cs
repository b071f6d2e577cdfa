using System.Diagnostics;
using System.Net;
using CriShim.TestImages;

namespace CriShim.Integration.Harness;

/// <summary>
/// Tests marked <c>[Collection(RegistryCollection.Name)]</c> share one <see cref="RegistryFixture"/>
/// per test run.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RegistryCollection : ICollectionFixture<RegistryFixture>
{
    public const string Name = "registry";
}

/// <summary>
/// Two registries for a whole test run: <see cref="Registry"/> (anonymous) holding every image of
/// <see cref="TestImageSet.Standard"/>, and <see cref="AuthRegistry"/> (htpasswd basic auth,
/// <see cref="Username"/>/<see cref="Password"/>) holding <see cref="TestImageNames.Busybox"/> and
/// <see cref="TestImageNames.BusyboxIndex"/>. Tests must not delete what they did not push.
/// </summary>
public sealed class RegistryFixture : IAsyncLifetime
{
    public const string Username = "crishim";
    public const string Password = "test-password";

    /// <summary>The images pushed to <see cref="AuthRegistry"/>.</summary>
    public static readonly IReadOnlyList<string> AuthRegistryImages = [TestImageNames.Busybox, TestImageNames.BusyboxIndex];

    private TestRegistry? _registry;
    private TestRegistry? _authRegistry;
    private Dictionary<string, TestImage> _images = [];

    public TestRegistry Registry => _registry ?? throw new InvalidOperationException("fixture not initialised");
    public TestRegistry AuthRegistry => _authRegistry ?? throw new InvalidOperationException("fixture not initialised");

    /// <summary>host:port of <see cref="Registry"/>.</summary>
    public string Host => Registry.Host;

    public NetworkCredential Credentials { get; } = new(Username, Password);

    /// <summary>How long building and pushing took, for the report in the test log.</summary>
    public TimeSpan SetupTime { get; private set; }

    /// <summary>Every pushed image, under each of its names (e.g. both busybox tags).</summary>
    public IReadOnlyDictionary<string, TestImage> Images => _images;

    /// <summary>A pushed image by its name, e.g. <see cref="TestImageNames.User"/>: digests, config, layers.</summary>
    public TestImage Image(string name) =>
        _images.TryGetValue(name, out var image) ? image : throw new KeyNotFoundException($"no test image named {name}");

    /// <summary>"127.0.0.1:PORT/crishim-test/busybox:latest" for <see cref="TestImageNames.Busybox"/>.</summary>
    public string Reference(string name)
    {
        Image(name); // a typo fails here, not as a confusing "manifest unknown" later
        return Registry.Reference(name);
    }

    /// <summary>"127.0.0.1:PORT/crishim-test/busybox@sha256:…": the image by its manifest (repo) digest.</summary>
    public string DigestReference(string name)
    {
        var image = Image(name);
        return Registry.Reference($"{image.Repository}@{image.ManifestDigest}");
    }

    /// <summary>The same name on <see cref="AuthRegistry"/>, for the images in <see cref="AuthRegistryImages"/>.</summary>
    public string AuthReference(string name) =>
        AuthRegistryImages.Contains(name) ? AuthRegistry.Reference(name) : throw new KeyNotFoundException($"{name} is not on the auth registry");

    public async Task InitializeAsync()
    {
        var clock = Stopwatch.StartNew();
        var build = Task.Run(TestImageSet.Standard);
        var starts = new[] { TestRegistry.StartAsync(), TestRegistry.StartAsync(Credentials) };
        try
        {
            await Task.WhenAll(starts);
        }
        finally
        {
            // Keep whichever started, so DisposeAsync stops it even if the other failed.
            _registry = starts[0].IsCompletedSuccessfully ? starts[0].Result : null;
            _authRegistry = starts[1].IsCompletedSuccessfully ? starts[1].Result : null;
        }
        var images = await build;
        _images = images.SelectMany(image => image.Names.Select(name => (name, image))).ToDictionary(pair => pair.name, pair => pair.image);

        using var client = Registry.CreateClient();
        using var authClient = AuthRegistry.CreateClient();
        await Task.WhenAll(
            client.PushAsync(images),
            authClient.PushAsync(images.Where(image => AuthRegistryImages.Contains(image.Name))));
        SetupTime = clock.Elapsed;
    }

    public async Task DisposeAsync()
    {
        if (_registry is not null) await _registry.DisposeAsync();
        if (_authRegistry is not null) await _authRegistry.DisposeAsync();
    }
}
