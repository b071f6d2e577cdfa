using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CriShim.TestImages;

namespace CriShim.Integration.Harness;

/// <summary>
/// Debian's docker-registry (distribution 2.8) on 127.0.0.1, a free port and a private temp dir for
/// storage, optionally behind htpasswd basic auth. Disposing stops it and deletes the storage.
/// </summary>
public sealed class TestRegistry : IAsyncDisposable
{
    public const string Binary = "/usr/bin/docker-registry";

    private readonly Process _process;

    private TestRegistry(Process process, int port, string directory, NetworkCredential? credentials)
    {
        _process = process;
        Port = port;
        Directory = directory;
        Credentials = credentials;
    }

    public int Port { get; }

    /// <summary>host:port, the registry part of an image reference.</summary>
    public string Host => $"127.0.0.1:{Port}";

    public Uri BaseUri => new($"http://{Host}/");

    /// <summary>The htpasswd user, or null for an anonymous registry.</summary>
    public NetworkCredential? Credentials { get; }

    /// <summary>Holds config.yml, the storage (data/), htpasswd and registry.log.</summary>
    public string Directory { get; }

    public string StorageDirectory => Path.Combine(Directory, "data");

    public string Log => File.Exists(LogFile) ? File.ReadAllText(LogFile) : "";

    private string LogFile => Path.Combine(Directory, "registry.log");

    /// <summary>"127.0.0.1:PORT/<paramref name="name"/>" for a repository:tag or repository@digest.</summary>
    public string Reference(string name) => $"{Host}/{name}";

    /// <summary>A client pushing with this registry's credentials, or others (wrong ones, for tests).</summary>
    public RegistryClient CreateClient(NetworkCredential? credentials = null) => new(Host, credentials ?? Credentials);

    /// <summary>
    /// Pushes the checkpoint archive at <paramref name="archivePath"/> as a checkpoint image (see
    /// <see cref="CriShim.TestImages.Image.Checkpoint"/>) under <paramref name="repositoryTag"/>; returns its full reference.
    /// </summary>
    public async Task<string> PushCheckpointAsync(string archivePath, string containerName, string repositoryTag, LayerCompression compression = LayerCompression.None)
    {
        var image = CriShim.TestImages.Image.Checkpoint(await File.ReadAllBytesAsync(archivePath), containerName, compression);
        int colon = repositoryTag.LastIndexOf(':');
        using var client = CreateClient();
        await client.PushAsync(repositoryTag[..colon], image, [repositoryTag[(colon + 1)..]]);
        return Reference(repositoryTag);
    }

    /// <summary>Starts a registry and waits until /v2/ answers; with <paramref name="credentials"/> it demands them.</summary>
    public static async Task<TestRegistry> StartAsync(NetworkCredential? credentials = null)
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("crishim-registry-").FullName;
        try
        {
            string? htpasswd = null;
            if (credentials is not null)
            {
                htpasswd = Path.Combine(directory, "htpasswd");
                var hash = await HostCommand.RunAsync("htpasswd", ["-Bbn", credentials.UserName, credentials.Password]);
                await File.WriteAllTextAsync(htpasswd, hash.EnsureSuccess().Output);
            }
            // Another process may take the free port before the registry binds it: then try another.
            for (int attempt = 1; ; attempt++)
            {
                int port = FreePort();
                var registry = new TestRegistry(Launch(directory, port, htpasswd), port, directory, credentials);
                try
                {
                    await registry.WaitUntilServingAsync(TimeSpan.FromSeconds(60));
                    return registry;
                }
                catch (Exception failure)
                {
                    registry.Stop();
                    if (failure is not InvalidOperationException || attempt == 3) throw;
                }
            }
        }
        catch
        {
            System.IO.Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    private static Process Launch(string directory, int port, string? htpasswd)
    {
        string config = Path.Combine(directory, "config.yml");
        File.WriteAllText(config, $"""
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: {Path.Combine(directory, "data")}
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            http:
              addr: 127.0.0.1:{port}
              secret: crishim-test-registry
            {(htpasswd is null ? "" : $"auth:\n  htpasswd:\n    realm: crishim-test\n    path: {htpasswd}\n")}
            """);
        // The registry logs to stderr; a file keeps it without a reader thread and survives for post-mortems.
        var start = new ProcessStartInfo("/bin/sh", ["-c", $"exec {Binary} serve \"$0\" >>\"$1\" 2>&1", config, Path.Combine(directory, "registry.log")]);
        return Process.Start(start) ?? throw new InvalidOperationException("cannot start " + Binary);
    }

    private async Task WaitUntilServingAsync(TimeSpan limit)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"docker-registry exited with {_process.ExitCode}:\n{Log}");
            try
            {
                // 401 is an answer too: the htpasswd registry demands credentials even for /v2/.
                using var response = await http.GetAsync(new Uri(BaseUri, "v2/"));
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too slow on a loaded machine: ask again until the deadline.
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"docker-registry did not answer on {Host} within {limit}:\n{Log}");
            await Task.Delay(50);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Stop()
    {
        if (!_process.HasExited) _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        System.IO.Directory.Delete(Directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
