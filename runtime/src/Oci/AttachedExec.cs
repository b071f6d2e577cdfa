using System.Threading.Channels;
using CliWrap;
using CriShim.NativeInterop;

namespace CriShim.Runtime.Oci;

/// <summary>A terminal size as the clients send it on the resize channel: columns and rows.</summary>
public readonly record struct TerminalSize(ushort Width, ushort Height);

/// <summary>
/// The caller's side of an exec'd process: its stdio (null where the caller asked for none; no stderr with a
/// terminal) and, with a terminal, the sizes to give it in order.
/// </summary>
public sealed record ExecStdio(Stream? Stdin, Stream? Stdout, Stream? Stderr, bool Terminal, ChannelReader<TerminalSize>? Resizes = null);

/// <summary>
/// Runs `runc|crun exec` with the caller's streams, for the streaming Exec. Without a terminal the
/// runtime's stdio are pipes (CliWrap) copied to and from the client. With one, the daemon opens a
/// pseudoterminal and makes its slave the runtime's stdio; the runtime (`exec -t`, not detached)
/// then relays between that and the container's own terminal, puts ours in raw mode, and resizes the
/// container's terminal from ours on SIGWINCH. Running in the foreground keeps the exit code, which
/// `--console-socket` (valid only with --detach) would lose.
/// </summary>
internal static class AttachedExec
{
    private const int SigWinch = 28;

    /// <summary><paramref name="arguments"/>: the runtime's `exec` arguments, `-t` included with a terminal.</summary>
    public static async Task<int> RunAsync(string binaryPath, IReadOnlyList<string> arguments, ExecStdio stdio, string pidFile,
        CancellationToken cancellationToken)
    {
        try
        {
            return stdio.Terminal
                ? await RunWithTerminalAsync(binaryPath, arguments, stdio, cancellationToken)
                : await RunPipedAsync(binaryPath, arguments, stdio, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            OciRuntime.KillExecProcess(pidFile);
            throw;
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    private static async Task<int> RunPipedAsync(string binaryPath, IReadOnlyList<string> arguments, ExecStdio streams,
        CancellationToken cancellationToken)
    {
        var cli = Cli.Wrap(binaryPath)
            .WithArguments(arguments)
            .WithValidation(CommandResultValidation.None)
            .WithStandardInputPipe(streams.Stdin is { } stdin ? PipeSource.FromStream(stdin) : PipeSource.Null)
            .WithStandardOutputPipe(streams.Stdout is { } stdout ? PipeTarget.ToStream(stdout) : PipeTarget.Null)
            .WithStandardErrorPipe(streams.Stderr is { } stderr ? PipeTarget.ToStream(stderr) : PipeTarget.Null);
        var result = await cli.ExecuteAsync(cancellationToken);
        return result.ExitCode;
    }

    private static async Task<int> RunWithTerminalAsync(string binaryPath, IReadOnlyList<string> arguments, ExecStdio streams,
        CancellationToken cancellationToken)
    {
        var pair = Pseudoterminals.Open();
        using var master = pair.Master;
        Pseudoterminals.MakeRaw(master);
        Pseudoterminals.SetWindowSize(master, 80, 24);
        // The shell opens the slave by path for the runtime's stdio (.NET cannot hand a child an arbitrary fd).
        var cli = Cli.Wrap("/bin/sh")
            .WithArguments(["-c", "exec \"$0\" \"$@\" <>\"$CRISHIM_TTY\" >&0 2>&0", binaryPath, .. arguments])
            .WithEnvironmentVariables(new Dictionary<string, string?> { ["CRISHIM_TTY"] = pair.SlavePath })
            .WithValidation(CommandResultValidation.None);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var terminal = new FileStream(master, FileAccess.ReadWrite, bufferSize: 0);
        var task = cli.ExecuteAsync(stop.Token);
        int runtimePid = task.ProcessId;

        var output = Task.Factory.StartNew(() => PumpOutput(terminal, streams.Stdout), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var input = streams.Stdin is { } stdin ? PumpInputAsync(stdin, terminal, stop.Token) : Task.CompletedTask;
        var resize = streams.Resizes is { } resizes ? Task.Run(async () =>
        {
            await foreach (var size in resizes.ReadAllAsync(stop.Token))
            {
                try
                {
                    Pseudoterminals.SetWindowSize(master, size.Width, size.Height);
                    Processes.Kill(runtimePid, SigWinch);
                }
                catch (Exception e) when (e is NativeCallException or ObjectDisposedException)
                {
                    // The process has just exited: there is no terminal left to resize.
                }
            }
        }, CancellationToken.None) : Task.CompletedTask;

        int exitCode;
        try
        {
            exitCode = (await task).ExitCode;
        }
        finally
        {
            // The runtime has exited: the slave is closed, so reading the master drains and then fails.
            await Task.WhenAny(output, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
            await stop.CancelAsync();
            await Task.WhenAll(Quiet(input), Quiet(resize));
            terminal.Dispose();
            await Quiet(output);
        }
        return exitCode;
    }

    private static void PumpOutput(FileStream terminal, Stream? stdout)
    {
        byte[] buffer = new byte[32 * 1024];
        try
        {
            while (true)
            {
                int read = terminal.Read(buffer, 0, buffer.Length);
                if (read <= 0) return;
                stdout?.Write(buffer, 0, read);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            // EIO: every slave fd is closed.
        }
    }

    private static async Task PumpInputAsync(Stream stdin, FileStream terminal, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[32 * 1024];
        while (true)
        {
            int read = await stdin.ReadAsync(buffer, cancellationToken);
            if (read <= 0)
            {
                // End of the client's input: as a terminal would, send ^D.
                terminal.Write([4]);
                return;
            }
            terminal.Write(buffer, 0, read);
        }
    }

    private static async Task Quiet(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or NativeCallException)
        {
        }
    }
}
