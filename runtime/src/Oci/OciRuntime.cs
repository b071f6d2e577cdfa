using System.Text.Json;
using System.Text.Json.Serialization;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Oci;

/// <summary>`runc|crun features` output (OCI runtime features), the fields the daemon uses.</summary>
public sealed record OciFeatures(
    [property: JsonPropertyName("mountOptions")] List<string>? MountOptions,
    [property: JsonPropertyName("linux")] OciLinuxFeatures? Linux = null)
{
    public static readonly OciFeatures None = new(MountOptions: null);

    /// <summary>The "rro" option: mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE).</summary>
    public bool RecursiveReadOnlyMounts => MountOptions?.Contains("rro") == true;

    /// <summary>
    /// Bind mounts seen through an id mapping (mount_setattr MOUNT_ATTR_IDMAP): crun lists an "idmap" mount option,
    /// runc >= 1.2 says so in linux.mountExtensions.idmap.enabled (the runtime-spec features field).
    /// </summary>
    public bool IdMappedMounts => MountOptions?.Contains("idmap") == true || Linux?.MountExtensions?.IdMap?.Enabled == true;

    /// <summary>
    /// Runs pods in their own user namespace as the kubelet asks for them: creates and joins user namespaces
    /// and idmaps the pod's volume mounts (the daemon idmaps the rootfs itself). runc before 1.2 cannot idmap mounts.
    /// </summary>
    public bool UserNamespaces => Linux?.Namespaces?.Contains("user") == true && IdMappedMounts;
}

/// <summary>The "linux" part of `features`.</summary>
public sealed record OciLinuxFeatures(
    [property: JsonPropertyName("namespaces")] List<string>? Namespaces,
    [property: JsonPropertyName("mountExtensions")] OciMountExtensions? MountExtensions = null);

/// <summary>`features` linux.mountExtensions: what the runtime can do to mounts beyond mount options.</summary>
public sealed record OciMountExtensions([property: JsonPropertyName("idmap")] OciFeatureSwitch? IdMap);

/// <summary>A feature the runtime reports as enabled or not.</summary>
public sealed record OciFeatureSwitch([property: JsonPropertyName("enabled")] bool? Enabled);

/// <summary>`runc|crun state` output, the fields the daemon uses: status is created, running, paused or stopped.</summary>
public sealed record OciState([property: JsonPropertyName("status")] string Status, [property: JsonPropertyName("pid")] int Pid);

[JsonSerializable(typeof(OciFeatures))]
[JsonSerializable(typeof(OciState))]
internal sealed partial class OciJsonContext : JsonSerializerContext;

/// <summary>One OCI runtime handler (runc or crun), driven through its command line with its own --root.</summary>
public sealed class OciRuntime(string handler, string binaryPath, string root) : IOciRuntime
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(30);
    private readonly ExternalCommand _command = new(handler, binaryPath);

    public string Handler { get; } = handler;
    public string BinaryPath { get; } = binaryPath;
    public string Root { get; } = root;

    private List<string> Global(params string[] rest) => ["--root", Root, .. rest];

    /// <summary>What `--version` says: the first line, and whether the build can checkpoint.</summary>
    public async Task<(string Version, bool CanCheckpoint)> VersionAsync(CancellationToken cancellationToken)
    {
        var output = await _command.RunAsync(["--version"], QueryTimeout, cancellationToken);
        string first = output.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "";
        // runc always links CRIU support in; crun only when built with libcriu, which it lists as +CRIU.
        bool canCheckpoint = !first.StartsWith("crun", StringComparison.Ordinal) || output.StandardOutput.Contains("+CRIU", StringComparison.Ordinal);
        return (first, canCheckpoint);
    }

    /// <summary>
    /// What the runtime supports, asked once: runtimes older than the `features` command (crun 1.8)
    /// support none of the optional features.
    /// </summary>
    public Task<OciFeatures> FeaturesAsync() => LazyInitializer.EnsureInitialized(ref _features, ProbeFeaturesAsync);

    private Task<OciFeatures>? _features;

    private async Task<OciFeatures> ProbeFeaturesAsync()
    {
        var output = await _command.RunAsync(["features"], QueryTimeout, CancellationToken.None, allowFailure: true);
        if (output.ExitCode != 0) return OciFeatures.None;
        try
        {
            return JsonSerializer.Deserialize(output.StandardOutput, OciJsonContext.Default.OciFeatures) ?? OciFeatures.None;
        }
        catch (JsonException)
        {
            return OciFeatures.None;
        }
    }

    private static readonly TimeSpan LifecycleTimeout = TimeSpan.FromSeconds(60);

    // `state` reads a file and probes a pid: a runtime slower than this is hung, and callers move on without its view.
    private static readonly TimeSpan StateTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The runtime's own view of the container (`state`); null when it does not know the container.</summary>
    public async Task<OciState?> StateAsync(string id, CancellationToken cancellationToken)
    {
        var args = Global("state", id);
        var output = await _command.RunAsync(args, StateTimeout, cancellationToken, allowFailure: true);
        if (output.ExitCode != 0)
        {
            if (IsGone(output.StandardError)) return null;
            throw new ExternalCommandException(Handler, args, output.ExitCode, output.StandardError);
        }
        try
        {
            return JsonSerializer.Deserialize(output.StandardOutput, OciJsonContext.Default.OciState)
                ?? throw new JsonException("null state");
        }
        catch (JsonException e)
        {
            throw new ExternalCommandException(Handler, args, output.ExitCode, $"unreadable state: {e.Message}");
        }
    }

    /// <summary>Runs the created container's process (conmon did `create`).</summary>
    public Task StartAsync(string id, CancellationToken cancellationToken) =>
        _command.RunAsync(Global("start", id), LifecycleTimeout, cancellationToken);

    /// <summary>Signals the container's init process, or every process with <paramref name="all"/>;
    /// false when the container is already gone or stopped.</summary>
    public async Task<bool> KillAsync(string id, int signal, bool all, CancellationToken cancellationToken)
    {
        var args = all ? Global("kill", "--all", id, signal.ToString()) : Global("kill", id, signal.ToString());
        var output = await _command.RunAsync(args, LifecycleTimeout, cancellationToken, allowFailure: true);
        if (output.ExitCode == 0) return true;
        string error = output.StandardError;
        if (IsGone(error) || error.Contains("not running", StringComparison.OrdinalIgnoreCase) ||
            error.Contains("process already finished", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        throw new ExternalCommandException(Handler, args, output.ExitCode, error);
    }

    /// <summary>Deletes the runtime's state of the container, killing it if needed; a no-op when unknown.</summary>
    public async Task DeleteAsync(string id, CancellationToken cancellationToken)
    {
        var args = Global("delete", "--force", id);
        var output = await _command.RunAsync(args, LifecycleTimeout, cancellationToken, allowFailure: true);
        if (output.ExitCode != 0 && !IsGone(output.StandardError))
        {
            throw new ExternalCommandException(Handler, args, output.ExitCode, output.StandardError);
        }
    }

    /// <summary>Applies a linux.resources JSON object to the live container.</summary>
    public Task UpdateResourcesAsync(string id, string resourcesJson, CancellationToken cancellationToken) =>
        _command.RunAsync(Global("update", "--resources", "-", id), LifecycleTimeout, cancellationToken, standardInput: resourcesJson);

    /// <summary>
    /// Runs a command in the container and collects up to <paramref name="outputLimit"/> bytes of each of its
    /// stdout and stderr, raw. The process inherits the container's env, user and cwd. At the limit, or when
    /// the caller cancels, the exec'd process itself is killed.
    /// </summary>
    public async Task<CapturedOutput> ExecAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, int outputLimit, string pidFile, CancellationToken cancellationToken)
    {
        var args = ExecArguments(id, command, pidFile, terminal: false);
        // Only the exec'd process is killed, so runc exec, its parent, reaps it and exits. Killing runc
        // first would orphan it to the host's init, which need not reap it: a zombie left in the container.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(timeout);
        await using var killAtStop = stop.Token.Register(() => KillExecProcess(pidFile));
        try
        {
            var output = await _command.RunCapturedAsync(args, timeout + ExecReapGrace, outputLimit, CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            if (stop.IsCancellationRequested) throw new ExternalCommandTimeoutException(_command.Tool, args, timeout);
            return output;
        }
        catch (ExternalCommandTimeoutException)
        {
            // runc outlived the grace (the pid file came too late): runc's tree is gone, the process may not be.
            KillExecProcess(pidFile);
            throw;
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    private static readonly TimeSpan ExecReapGrace = TimeSpan.FromSeconds(5);

    /// <summary>Freezes every process of the container (cgroup freezer).</summary>
    public Task PauseAsync(string id, CancellationToken cancellationToken) =>
        _command.RunAsync(Global("pause", id), LifecycleTimeout, cancellationToken);

    /// <summary>Thaws the container; a no-op when it is not paused.</summary>
    public async Task ResumeAsync(string id, CancellationToken cancellationToken)
    {
        var args = Global("resume", id);
        var output = await _command.RunAsync(args, LifecycleTimeout, cancellationToken, allowFailure: true);
        if (output.ExitCode != 0 && !output.StandardError.Contains("not paused", StringComparison.OrdinalIgnoreCase))
        {
            throw new ExternalCommandException(Handler, args, output.ExitCode, output.StandardError);
        }
    }

    /// <summary>
    /// Dumps the container with CRIU and leaves it running. Cancellation kills the runtime and its
    /// CRIU child; the caller must then resume the container if it froze it.
    /// </summary>
    public Task CheckpointAsync(string id, string imagePath, string workPath, IEnumerable<string> criuOptions, TimeSpan limit, CancellationToken cancellationToken) =>
        _command.RunAsync(Global(["checkpoint", "--leave-running", "--file-locks", "--image-path", imagePath, "--work-path", workPath, .. criuOptions, id]),
            limit, cancellationToken);

    /// <summary>
    /// Runs a command in the container with the caller's stdio until it exits (the streaming Exec): pipes, or a
    /// terminal that follows the caller's resizes. Cancellation kills the exec'd process. Returns its exit code.
    /// </summary>
    public Task<int> ExecAttachedAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, string pidFile, CancellationToken cancellationToken) =>
        AttachedExec.RunAsync(BinaryPath, ExecArguments(id, command, pidFile, stdio.Terminal), stdio, pidFile, cancellationToken);

    private List<string> ExecArguments(string id, IReadOnlyList<string> command, string pidFile, bool terminal) =>
        terminal ? Global(["exec", "-t", "--pid-file", pidFile, id, .. command]) : Global(["exec", "--pid-file", pidFile, id, .. command]);

    /// <summary>Killing runc's exec leaves the exec'd process running; the pid file names it.</summary>
    internal static void KillExecProcess(string pidFile)
    {
        if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out int pid)) NativeInterop.Processes.Kill(pid, 9);
    }

    private static bool IsGone(string stderr) =>
        stderr.Contains("does not exist", StringComparison.OrdinalIgnoreCase) ||
        stderr.Contains("not found", StringComparison.OrdinalIgnoreCase) ||
        stderr.Contains("No such file or directory", StringComparison.Ordinal);
}
