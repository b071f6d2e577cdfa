using System.Text.Json;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Oci;

/// <summary>What conmon needs to create and then watch one container.</summary>
public sealed record ConmonLaunch(
    string ContainerId,
    string Name,
    string BundleDir,
    IOciRuntime Runtime,
    string LogPath,
    bool SystemdCgroup,
    bool Stdin = false,
    bool StdinOnce = false,
    bool Terminal = false,
    string? RestoreImagesDir = null,
    IReadOnlyList<string>? RuntimeOptions = null);

/// <summary>The OCI runtime refused to create the container; the message is the runtime's own.</summary>
public sealed class ContainerCreateException(string message) : Exception(message);

/// <summary>
/// conmon, the per-container monitor CRI-O uses: it runs `runtime create`, then holds the container's
/// stdio, writes the CRI-format log and the exit file, and outlives the daemon.
/// </summary>
public sealed class Conmon(string path, string exitDir, string socketDir) : IContainerMonitor
{
    private static readonly TimeSpan CreateTimeout = TimeSpan.FromSeconds(60);
    /// <summary>A restore reads the container's whole memory back: gigabytes take more than a create.</summary>
    private static readonly TimeSpan RestoreTimeout = TimeSpan.FromMinutes(10);
    // conmon reports the create result on the fd named by _OCI_SYNCPIPE. .NET cannot hand a child an
    // extra fd, so a shell opens fd 3 on a file in the bundle and execs conmon with it.
    private readonly ExternalCommand _command = new("conmon", "/bin/sh");

    public string Path { get; } = path;

    public static string SyncFile(string bundleDir) => System.IO.Path.Combine(bundleDir, "conmon-sync");
    public static string PidFile(string bundleDir) => System.IO.Path.Combine(bundleDir, "pidfile");
    public static string ConmonPidFile(string bundleDir) => System.IO.Path.Combine(bundleDir, "conmon.pid");
    /// <summary>conmon's control FIFO: "1 rows cols" resizes the terminal, "2 0 0" reopens the log.</summary>
    public static string ControlFifo(string bundleDir) => System.IO.Path.Combine(bundleDir, "ctl");
    private static string OomFile(string bundleDir) => System.IO.Path.Combine(bundleDir, "oom");
    private string ExitFile(string containerId) => System.IO.Path.Combine(exitDir, containerId);

    public string AttachSocketDir(string containerId) => System.IO.Path.Combine(socketDir, containerId);

    public bool HasExitRecord(string containerId) => File.Exists(ExitFile(containerId));

    /// <summary>conmon writes the exit code as text once the process is reaped, and an "oom" marker in its working directory (the bundle).</summary>
    public MonitoredExit? ExitOf(string containerId, string bundleDir)
    {
        string exitFile = ExitFile(containerId);
        if (!File.Exists(exitFile)) return null;
        string text = File.ReadAllText(exitFile).Trim();
        if (text.Length == 0) return null;
        int exitCode = int.TryParse(text, out int code) ? code : 255;
        return new MonitoredExit(exitCode, File.Exists(OomFile(bundleDir)), File.GetLastWriteTimeUtc(exitFile));
    }

    /// <summary>The exit file, and the directory of attach sockets conmon made for the container: both outlive conmon.</summary>
    public void Forget(string containerId)
    {
        File.Delete(ExitFile(containerId));
        string sockets = AttachSocketDir(containerId);
        if (Directory.Exists(sockets)) Directory.Delete(sockets, recursive: true);
    }

    /// <summary>Creates the container through conmon; returns the container's init pid.</summary>
    public async Task<int> CreateAsync(ConmonLaunch launch, CancellationToken cancellationToken)
    {
        Store.StateDirectory.Create(exitDir);
        Store.StateDirectory.Create(socketDir);
        string syncFile = SyncFile(launch.BundleDir);
        File.Delete(syncFile);
        var args = new List<string>
        {
            // conmon also writes its "oom" marker relative to its working directory, so it starts in the
            // bundle, as CRI-O starts it; otherwise the daemon's cwd (/ under systemd) would collect them.
            "-c", "cd \"$CRISHIM_CONMON_BUNDLE\" && exec \"$0\" \"$@\" 3>>\"$CRISHIM_CONMON_SYNC\"", Path,
            "--api-version", "1",
            "-c", launch.ContainerId,
            "-u", launch.ContainerId,
            "-n", launch.Name,
            "-r", launch.Runtime.BinaryPath,
            "-b", launch.BundleDir,
            "-p", PidFile(launch.BundleDir),
            "-P", ConmonPidFile(launch.BundleDir),
            "-l", $"k8s-file:{launch.LogPath}",
            "--exit-dir", exitDir,
            "--persist-dir", launch.BundleDir,
            "--socket-dir-path", socketDir,
            "--runtime-arg", "--root",
            "--runtime-arg", launch.Runtime.Root,
            "--log-level", "info",
        };
        if (launch.SystemdCgroup) args.Add("--systemd-cgroup");
        // conmon holds the container's stdin (for attach) and allocates its terminal through runc's console socket.
        if (launch.Stdin) args.Add("--stdin");
        if (launch.Stdin && !launch.StdinOnce) args.Add("--leave-stdin-open");
        if (launch.Terminal) args.Add("--terminal");
        // `runtime restore --image-path <dir> --work-path <bundle>` instead of `create`, plus the restore's CRIU options.
        if (launch.RestoreImagesDir is not null) args.AddRange(["--restore", launch.RestoreImagesDir]);
        foreach (string option in launch.RuntimeOptions ?? []) args.AddRange(["--runtime-opt", option]);
        var environment = new Dictionary<string, string?>
        {
            ["CRISHIM_CONMON_SYNC"] = syncFile,
            ["CRISHIM_CONMON_BUNDLE"] = launch.BundleDir,
            ["_OCI_SYNCPIPE"] = "3",
        };
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timeout = launch.RestoreImagesDir is null ? CreateTimeout : RestoreTimeout;
        limit.CancelAfter(timeout);
        // Without --sync conmon forks and its first process exits at once; the result arrives in the sync file.
        await _command.RunAsync(args, CreateTimeout, cancellationToken, environment);
        try
        {
            return await WaitForCreateResultAsync(syncFile, launch, limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ExternalCommandTimeoutException("conmon", [launch.RestoreImagesDir is null ? "create" : "restore", launch.ContainerId], timeout);
        }
    }

    private static async Task<int> WaitForCreateResultAsync(string syncFile, ConmonLaunch launch, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string content = File.Exists(syncFile) ? await File.ReadAllTextAsync(syncFile, cancellationToken) : "";
            int newline = content.IndexOf('\n');
            if (newline > 0)
            {
                using var message = JsonDocument.Parse(content[..newline]);
                int data = message.RootElement.GetProperty("data").GetInt32();
                if (data > 0) return data;
                string detail = message.RootElement.TryGetProperty("message", out var m) ? m.GetString() ?? "" : "";
                throw new ContainerCreateException($"{launch.Runtime.Handler} could not create container {launch.ContainerId}: {detail.Trim()}");
            }
            if (ConmonDied(launch.BundleDir))
            {
                throw new ContainerCreateException($"conmon exited before creating container {launch.ContainerId} (no result in {syncFile})");
            }
            await Task.Delay(10, cancellationToken);
        }
    }

    private static bool ConmonDied(string bundleDir) =>
        ConmonPid(bundleDir) is int pid && !CriShim.NativeInterop.Processes.IsAlive(pid);

    private static int? ConmonPid(string bundleDir)
    {
        string pidFile = ConmonPidFile(bundleDir);
        return File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out int pid) ? pid : null;
    }

    /// <summary>The conmon of the container created from <paramref name="bundleDir"/>, while it runs; null once it is gone.</summary>
    public ProcessIdentity? MonitorOf(string bundleDir) => ConmonPid(bundleDir) is int pid ? ProcessIdentity.Of(pid) : null;

    /// <summary>conmon (its -b), the runtime it runs (its --bundle) and what they started all name the bundle or descend from what does.</summary>
    public void KillLaunch(string bundleDir) => ProcessTree.Kill(ProcessTree.Naming(bundleDir));

    /// <summary>
    /// Asks conmon to reopen the log and waits until the file is back, as CRI-O does: the kubelet
    /// rotates by renaming the log and expects the new file to exist when the call returns.
    /// </summary>
    public async Task ReopenLogAsync(string bundleDir, string logPath, CancellationToken cancellationToken)
    {
        string control = ControlFifo(bundleDir);
        if (!File.Exists(control)) throw new InvalidOperationException($"conmon control pipe {control} is missing");
        // Message type 2 is "reopen logs" in conmon's control protocol; the two numbers are unused sizes.
        await using (var pipe = new FileStream(control, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            await pipe.WriteAsync("2 0 0\n"u8.ToArray(), cancellationToken);
        }
        var deadline = DateTime.UtcNow + ReopenLogLimit;
        while (!File.Exists(logPath))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"conmon did not reopen the log {logPath} within {ReopenLogLimit.TotalSeconds:0} s");
            }
            await Task.Delay(10, cancellationToken);
        }
    }

    private static readonly TimeSpan ReopenLogLimit = TimeSpan.FromSeconds(10);
}
