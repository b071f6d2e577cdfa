using System.Net.Sockets;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Streaming;

/// <summary>
/// The streaming half of the CRI: Exec, Attach and PortForward validate and park their request
/// behind a token and answer with a URL on <see cref="StreamingServer"/>; a client connecting there
/// gets the process, the container's stdio or the pod's port.
/// </summary>
public sealed class StreamingService(
    StreamingTokenCache tokens,
    StreamingEndpointAddress address,
    ContainerLookup containers,
    PodSandboxService sandboxes,
    RuntimeHandlers handlers,
    IContainerMonitor monitor,
    StatePaths paths,
    IIdSource ids,
    ILogger<StreamingService> logger)
{
    public async Task<string> ExecUrlAsync(ExecRequest request, CancellationToken cancellationToken)
    {
        ProcessArguments.Validate(request.Cmd, "cmd");
        ValidateStdio(request.Tty, request.Stdin, request.Stdout, request.Stderr);
        var record = RunningContainer(request.ContainerId);
        string token = tokens.Insert(new ExecStreamRequest(record.Id, [.. request.Cmd], request.Tty, request.Stdin, request.Stdout, request.Stderr));
        return $"{await address.BaseUrlAsync(cancellationToken)}/exec/{token}";
    }

    public async Task<string> AttachUrlAsync(AttachRequest request, CancellationToken cancellationToken)
    {
        ValidateStdio(request.Tty, request.Stdin, request.Stdout, request.Stderr);
        var record = RunningContainer(request.ContainerId);
        string token = tokens.Insert(new AttachStreamRequest(record.Id, request.Tty, request.Stdin, request.Stdout, request.Stderr));
        return $"{await address.BaseUrlAsync(cancellationToken)}/attach/{token}";
    }

    public async Task<string> PortForwardUrlAsync(PortForwardRequest request, CancellationToken cancellationToken)
    {
        var pod = sandboxes.Get(request.PodSandboxId);
        if (!pod.Ready) throw new WrongStateException($"pod sandbox {pod.Id} is not ready");
        foreach (int port in request.Port)
        {
            if (port is <= 0 or > 65535) throw new InvalidRequestException($"invalid port {port}");
        }
        string token = tokens.Insert(new PortForwardStreamRequest(pod.Id, [.. request.Port]));
        return $"{await address.BaseUrlAsync(cancellationToken)}/portforward/{token}";
    }

    private static void ValidateStdio(bool tty, bool stdin, bool stdout, bool stderr)
    {
        if (tty && stderr) throw new InvalidRequestException("tty and stderr cannot both be true");
        if (!stdin && !stdout && !stderr) throw new InvalidRequestException("one of stdin, stdout, or stderr must be set");
    }

    private ContainerRecord RunningContainer(string id)
    {
        if (string.IsNullOrEmpty(id)) throw new InvalidRequestException("container_id must be set");
        var record = containers.Get(id);
        if (record.State != ContainerState.ContainerRunning)
        {
            throw new WrongStateException($"container {record.Id} is not running");
        }
        return record;
    }

    /// <summary>Runs the exec'd command with the client's streams; its exit code, or why it could not run.</summary>
    public async Task<RemoteCommandResult> ExecAsync(ExecStreamRequest request, RemoteCommandStreams streams, CancellationToken cancellationToken)
    {
        try
        {
            var record = RunningContainer(request.ContainerId);
            if (!handlers.TryGet(record.RuntimeHandler, out var runtime))
            {
                return RemoteCommandResult.Failed($"runtime handler \"{record.RuntimeHandler}\" is no longer configured");
            }
            StateDirectory.Create(paths.Exec);
            string pidFile = Path.Combine(paths.Exec, $"{record.Id}-{ids.NewId()[..12]}.pid");
            logger.LogDebug("exec {Command} in container {Id} (tty {Tty})", string.Join(' ', request.Command), record.Id, request.Tty);
            int exitCode = await runtime.ExecAttachedAsync(record.Id, request.Command,
                new ExecStdio(streams.Stdin, streams.Stdout, streams.Stderr, request.Tty, streams.Resizes), pidFile, cancellationToken);
            return new RemoteCommandResult(exitCode);
        }
        catch (Exception e) when (e is NotFoundException or WrongStateException or IOException or InvalidOperationException
                                      or System.ComponentModel.Win32Exception)
        {
            return RemoteCommandResult.Failed(e.Message);
        }
    }

    /// <summary>Relays the container's stdio through conmon until the container exits or the client leaves.</summary>
    public async Task<RemoteCommandResult> AttachAsync(AttachStreamRequest request, RemoteCommandStreams streams, CancellationToken cancellationToken)
    {
        try
        {
            var record = RunningContainer(request.ContainerId);
            await ConmonAttach.RunAsync(monitor.AttachSocketDir(record.Id), paths.ContainerBundle(record.Id), streams, cancellationToken);
            return new RemoteCommandResult(0);
        }
        catch (Exception e) when (e is NotFoundException or WrongStateException or IOException or SocketException or CriShim.NativeInterop.NativeCallException)
        {
            return RemoteCommandResult.Failed($"attach to container {request.ContainerId}: {e.Message}");
        }
    }

    /// <summary>A connection to <paramref name="port"/> on the pod's loopback.</summary>
    public Task<Socket> ConnectPortAsync(string podId, int port, CancellationToken cancellationToken)
    {
        var pod = sandboxes.Get(podId);
        return PortForwarder.ConnectAsync(pod.NetNsPath, port, cancellationToken);
    }
}

/// <summary>The streaming server's base URL, known once it listens (port 0 picks one at start).</summary>
public sealed class StreamingEndpointAddress
{
    private readonly TaskCompletionSource<string> _baseUrl = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Set(string baseUrl) => _baseUrl.TrySetResult(baseUrl);

    public string? Current => _baseUrl.Task.IsCompletedSuccessfully ? _baseUrl.Task.Result : null;

    public Task<string> BaseUrlAsync(CancellationToken cancellationToken) =>
        _baseUrl.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
}
