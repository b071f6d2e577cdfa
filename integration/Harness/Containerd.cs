using System.Diagnostics;
using System.Text;
using CriShim.TestImages;
using Grpc.Net.Client;

namespace CriShim.Integration.Harness;

/// <summary>
/// Debian's containerd beside CriShim, run by scripts/containerd.sh from its private prefix on a private socket,
/// root, state, config and /run (never the host's). Its CRI plugin uses make deps' runc, the CNI plugins on a
/// network of its own (<see cref="TestNetwork"/>) and the test registry, where the pause image is pushed for it.
/// Disposing removes its pods, stops it and its shims and deletes its directory.
/// </summary>
public sealed class Containerd : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private GrpcChannel? _channel;

    private Containerd(Process process, string directory)
    {
        _process = process;
        Directory = directory;
    }

    /// <summary>Where scripts/containerd.sh unpacks <paramref name="version"/> (1.7 or 2.1).</summary>
    public static string Binary(string version) => $"/opt/crishim/containerd-{version}/usr/bin/containerd";

    /// <summary>Holds config.toml, the socket, root/, state/, runc/ and the CNI network.</summary>
    public string Directory { get; }
    public string SocketPath => Path.Combine(Directory, "containerd.sock");
    public int ProcessId => _process.Id;
    public string Output { get { lock (_output) return _output.ToString(); } }

    public GrpcChannel Channel => _channel ??= Daemon.Connect(SocketPath);
    public RuntimeService.RuntimeServiceClient Runtime => new(Channel);
    public ImageService.ImageServiceClient Images => new(Channel);

    /// <summary>Starts containerd <paramref name="version"/> (installed beforehand) and waits until its CRI answers; fails when it is not installed.</summary>
    public static async Task<Containerd> StartAsync(string version, TestRegistry registry)
    {
        Assert.True(File.Exists(Binary(version)), $"containerd {version} is not installed at {Binary(version)}: scripts/containerd.sh install {version} (make interop and make bench-compare run it)");
        using (var client = registry.CreateClient()) await client.PushAsync(CritestImageSet.Pause());
        string directory = System.IO.Directory.CreateTempSubdirectory("crishim-containerd-").FullName;
        var network = TestNetwork.CreateDefault(directory);
        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (string arg in new[] { Path.Combine(Daemon.RepositoryRoot(), "scripts", "containerd.sh"), "run", version, directory, registry.Host, network.ConfDir })
        {
            info.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = info };
        var containerd = new Containerd(process, directory);
        process.OutputDataReceived += (_, e) => containerd.Append(e.Data);
        process.ErrorDataReceived += (_, e) => containerd.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await containerd.WaitUntilServingAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            await containerd.DisposeAsync();
            throw;
        }
        return containerd;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    private Task WaitUntilServingAsync(TimeSpan limit) =>
        CriSocket.WaitUntilServingAsync("containerd", _process, SocketPath, Runtime, () => Output, limit);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                foreach (var pod in (await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items)
                {
                    await Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id });
                    await Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
                }
            }
            catch (Grpc.Core.RpcException)
            {
                // Stopping it below still ends its shims and their containers.
            }
            _channel?.Dispose();
            Process.Start("kill", ["-TERM", _process.Id.ToString()])!.WaitForExit();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
            }
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
        // Shims outlive containerd by design; they and their containers are the last users of its mount namespace.
        foreach (var shim in Process.GetProcessesByName("containerd-shim-runc-v2"))
        {
            try
            {
                if (File.ReadAllText($"/proc/{shim.Id}/cmdline").Contains(Directory, StringComparison.Ordinal)) shim.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Already gone.
            }
        }
        TestNetwork.ReleaseFor(Directory);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 50)
            {
                await Task.Delay(100); // a shim's overlay mount goes with its namespace's last process
            }
        }
    }
}
