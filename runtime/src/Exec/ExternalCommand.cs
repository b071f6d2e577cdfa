using System.Diagnostics;
using System.Text;
using CliWrap;
using CriShim.Runtime.Diagnostics;

namespace CriShim.Runtime.Exec;

/// <summary>What an external program printed and returned.</summary>
public sealed record CommandOutput(int ExitCode, string StandardOutput, string StandardError, TimeSpan Duration);

/// <summary>What an external program printed, as raw bytes, each stream cut at the caller's limit.</summary>
public sealed record CapturedOutput(int ExitCode, CappedBuffer StandardOutput, CappedBuffer StandardError, TimeSpan Duration);

/// <summary>An external program failed: names the tool, the arguments and what it wrote to stderr.</summary>
public class ExternalCommandException(string tool, IReadOnlyList<string> arguments, int exitCode, string standardError)
    : Exception($"{tool} {string.Join(' ', arguments)} failed (exit {exitCode}): {Summarize(standardError)}")
{
    public string Tool { get; } = tool;
    public int ExitCode { get; } = exitCode;
    public string StandardError { get; } = standardError;

    private static string Summarize(string stderr)
    {
        string trimmed = stderr.Trim();
        return trimmed.Length == 0 ? "no error output" : trimmed.Length > 2000 ? trimmed[^2000..] : trimmed;
    }
}

/// <summary>An external program ran past its limit and was killed.</summary>
public sealed class ExternalCommandTimeoutException(string tool, IReadOnlyList<string> arguments, TimeSpan limit)
    : TimeoutException($"{tool} {string.Join(' ', arguments)} did not finish within {limit.TotalSeconds:0.###} s and was killed")
{
    public string Tool { get; } = tool;
}

/// <summary>
/// The one way the daemon runs another program: CliWrap with a hard limit, the caller's
/// cancellation, and stderr carried into the error. Typed wrappers (OciRuntime, Criu, ...) sit on it.
/// </summary>
public sealed class ExternalCommand(string tool, string path)
{
    public string Tool { get; } = tool;
    public string Path { get; } = path;

    /// <summary>
    /// What <see cref="RunAsync"/> keeps of each of stdout and stderr. The daemon's tools print far less;
    /// more means a misbehaving tool, whose output is then not trusted.
    /// </summary>
    public const int TextOutputLimit = 4 * 1024 * 1024;

    /// <summary>Runs the program and returns its output as text; a non-zero exit is an error unless allowed.</summary>
    public async Task<CommandOutput> RunAsync(
        IReadOnlyList<string> arguments,
        TimeSpan timeout,
        CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string?>? environment = null,
        string? standardInput = null,
        bool allowFailure = false)
    {
        var captured = await RunCapturedAsync(arguments, timeout, TextOutputLimit, cancellationToken, environment, standardInput);
        var output = new CommandOutput(captured.ExitCode, Decode(captured.StandardOutput), Decode(captured.StandardError), captured.Duration);
        string detail = output.StandardError.Trim().Length > 0 ? output.StandardError : output.StandardOutput;
        string? overflowed = captured.StandardOutput.Truncated ? "stdout" : captured.StandardError.Truncated ? "stderr" : null;
        if (overflowed is not null)
        {
            // At the end, where the error's summary looks.
            throw new ExternalCommandException(Tool, arguments, output.ExitCode,
                $"{detail}\n(output truncated: printed more than {TextOutputLimit / (1024 * 1024)} MiB on {overflowed})");
        }
        if (output.ExitCode != 0 && !allowFailure)
        {
            throw new ExternalCommandException(Tool, arguments, output.ExitCode, detail);
        }
        return output;
    }

    private static string Decode(CappedBuffer buffer) => Encoding.UTF8.GetString(buffer.Bytes.Span);

    /// <summary>
    /// Runs the program keeping at most <paramref name="outputLimit"/> bytes of each of stdout and stderr, raw;
    /// the rest is read and dropped while the program runs. Any exit code is returned, not thrown.
    /// </summary>
    public async Task<CapturedOutput> RunCapturedAsync(
        IReadOnlyList<string> arguments,
        TimeSpan timeout,
        int outputLimit,
        CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string?>? environment = null,
        string? standardInput = null)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var stdout = new CappedBuffer(outputLimit);
        var stderr = new CappedBuffer(outputLimit);
        var command = Cli.Wrap(Path)
            .WithArguments(arguments)
            .WithValidation(CommandResultValidation.None)
            .WithStandardOutputPipe(PipeTarget.Create(stdout.FillAsync))
            .WithStandardErrorPipe(PipeTarget.Create(stderr.FillAsync));
        if (environment is not null) command = command.WithEnvironmentVariables(environment);
        if (standardInput is not null) command = command.WithStandardInputPipe(PipeSource.FromString(standardInput));

        var stopwatch = Stopwatch.StartNew();
        CommandResult result;
        // CliWrap kills only the process it started; a tool's children (runc's CRIU, a plugin's helpers)
        // would survive it. So on cancellation the whole tree is killed first, then CliWrap is told.
        using var kill = new CancellationTokenSource();
        int processId = 0;
        try
        {
            var task = command.ExecuteAsync(kill.Token);
            processId = task.ProcessId;
            await using (limit.Token.Register(() =>
            {
                ProcessTree.Kill([processId]);
                kill.Cancel();
            }))
            {
                result = await task;
            }
            // The tree kill can end the process before CliWrap sees the cancellation.
            limit.Token.ThrowIfCancellationRequested();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ExternalCommandTimeoutException(Tool, arguments, timeout);
        }
        catch (OperationCanceledException)
        {
            throw new OperationCanceledException($"{Tool} was cancelled", cancellationToken);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ExternalCommandException(Tool, arguments, -1, $"cannot execute {Path}: {e.Message}");
        }
        catch (InvalidOperationException e) when (e.InnerException is System.ComponentModel.Win32Exception inner)
        {
            throw new ExternalCommandException(Tool, arguments, -1, $"cannot execute {Path}: {inner.Message}");
        }
        if (PhaseLog.Enabled) PhaseLog.Record($"exec {Tool}", Describe(arguments, environment), stopwatch.Elapsed);
        return new CapturedOutput(result.ExitCode, stdout, stderr, stopwatch.Elapsed);
    }

    /// <summary>The arguments (cut), and the CNI verb, which plugins take from the environment.</summary>
    private static string Describe(IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?>? environment)
    {
        string text = string.Join(' ', arguments);
        if (text.Length > 160) text = text[..160] + "…";
        return environment?.GetValueOrDefault("CNI_COMMAND") is { } cniCommand ? $"CNI {cniCommand} {text}".TrimEnd() : text;
    }
}
