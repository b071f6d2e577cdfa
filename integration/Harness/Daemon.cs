using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Grpc.Net.Client;

namespace CriShim.Integration.Harness;

/// <summary>
/// One real crishim process on a private socket and state dirs. Tests get gRPC clients to it;
/// disposing stops it with SIGTERM and removes its directories.
/// </summary>
public sealed class Daemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private GrpcChannel? _channel;

    private readonly bool _ownsDirs;

    private Daemon(Process process, DaemonDirs dirs, bool ownsDirs)
    {
        _process = process;
        Dirs = dirs;
        _ownsDirs = ownsDirs;
    }

    public DaemonDirs Dirs { get; }
    public string SocketPath => Dirs.Socket;
    public string Output { get { lock (_output) return _output.ToString(); } }
    public bool HasExited => _process.HasExited;
    public int ProcessId => _process.Id;
    public int ExitCode => _process.ExitCode;

    public GrpcChannel Channel => _channel ??= Connect(SocketPath);
    public RuntimeService.RuntimeServiceClient Runtime => new(Channel);
    public ImageService.ImageServiceClient Images => new(Channel);

    /// <summary>The crishim binary under test: $CRISHIM_BINARY (CI sets the AOT build) or the JIT build beside the tests.</summary>
    public static string Binary
    {
        get
        {
            string? fromEnvironment = Environment.GetEnvironmentVariable("CRISHIM_BINARY");
            if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
            string root = RepositoryRoot();
            string jit = Path.Combine(root, "runtime", "src", "bin", "Debug", "net10.0", "crishim");
            return File.Exists(jit) ? jit : throw new FileNotFoundException($"no crishim build at {jit}; run make build or set CRISHIM_BINARY");
        }
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CriShim.sln"))) return dir.FullName;
        }
        throw new DirectoryNotFoundException("CriShim.sln not found above " + AppContext.BaseDirectory);
    }

    public static GrpcChannel Connect(string socketPath) =>
        GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = UnixSocketHandler(socketPath),
            MaxReceiveMessageSize = 64 * 1024 * 1024,
        });

    /// <summary>HTTP over the unix socket at <paramref name="socketPath"/>, whatever host a request names.</summary>
    public static SocketsHttpHandler UnixSocketHandler(string socketPath) => new()
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>
    /// Starts the daemon and waits until Version answers. Directories passed in outlive the daemon
    /// (for restart tests; the caller deletes them); fresh ones are deleted with it.
    /// </summary>
    public static async Task<Daemon> StartAsync(DaemonDirs? dirs = null, string? configToml = null, params string[] extraArgs)
    {
        var daemon = Launch(dirs ?? DaemonDirs.Create(), configToml, ownsDirs: dirs is null, extraArgs);
        await daemon.WaitUntilServingAsync(TimeSpan.FromSeconds(60));
        return daemon;
    }

    /// <summary>Starts the daemon without waiting: for tests of start-up failures.</summary>
    public static Daemon Launch(DaemonDirs dirs, string? configToml = null, params string[] extraArgs) =>
        Launch(dirs, configToml, ownsDirs: false, extraArgs);

    /// <summary>Starts the daemon without waiting, with these variables added to its environment.</summary>
    public static Daemon Launch(DaemonDirs dirs, IReadOnlyDictionary<string, string> environment) =>
        Launch(dirs, configToml: null, ownsDirs: false, [], environment);

    private static Daemon Launch(DaemonDirs dirs, string? configToml, bool ownsDirs, string[] extraArgs,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        // No [cni] section: the daemon gets its own bridge network (TestNetwork), never the host's /etc/cni/net.d.
        File.WriteAllText(dirs.ConfigFile, TestNetwork.WithDefaultCni(dirs.Base, configToml));
        var info = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // Its own working directory, so a test can see what the daemon or its children drop there.
            WorkingDirectory = dirs.Base,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        foreach (string arg in new[] { "--config", dirs.ConfigFile, "--socket", dirs.Socket, "--root", dirs.Root, "--run-root", dirs.RunRoot }.Concat(extraArgs))
        {
            info.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = info };
        var daemon = new Daemon(process, dirs, ownsDirs);
        process.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    public Task WaitUntilServingAsync(TimeSpan limit) =>
        CriSocket.WaitUntilServingAsync("crishim", _process, SocketPath, Runtime, () => Output, limit);

    public async Task<int> WaitForExitAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>Stops the daemon the way systemd does; returns its exit code.</summary>
    public async Task<int> StopAsync()
    {
        _channel?.Dispose();
        _channel = null;
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString()])!.WaitForExit();
            try
            {
                return await WaitForExitAsync(TimeSpan.FromSeconds(30));
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: false);
            }
        }
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    /// <summary>Kills the daemon as a crash would: no shutdown path runs.</summary>
    public async Task KillAsync()
    {
        _channel?.Dispose();
        _channel = null;
        if (!_process.HasExited) _process.Kill(entireProcessTree: false);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
        if (_ownsDirs) Dirs.Delete();
    }
}

/// <summary>A daemon's private socket, state dirs and config file under one temp dir.</summary>
public sealed record DaemonDirs(string Base)
{
    public string Socket => Path.Combine(Base, "run", "crishim.sock");
    public string Root => Path.Combine(Base, "lib");
    public string RunRoot => Path.Combine(Base, "run");
    public string ConfigFile => Path.Combine(Base, "crishim.toml");

    public static DaemonDirs Create() => new(Directory.CreateTempSubdirectory("crishim-it-").FullName);

    public void Delete()
    {
        Leftovers.Clear(Base);
        TestNetwork.ReleaseFor(Base);
        try
        {
            Directory.Delete(Base, recursive: true);
        }
        catch (IOException)
        {
            // A mount left behind by a failed test must not hide that test's own failure.
        }
    }
}
