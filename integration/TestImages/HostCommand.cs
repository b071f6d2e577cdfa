using System.Diagnostics;

namespace CriShim.TestImages;

public sealed record CommandResult(string Command, int ExitCode, string Output, string Error)
{
    public CommandResult EnsureSuccess() =>
        ExitCode == 0 ? this : throw new InvalidOperationException($"{Command} exited {ExitCode}: {Error.Trim()}");
}

/// <summary>Runs a host program (dpkg-deb, ldd, skopeo, umoci, ...) to completion, capturing its output.</summary>
public static class HostCommand
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    public static async Task<CommandResult> RunAsync(string file, IReadOnlyList<string> arguments, TimeSpan? timeout = null)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"cannot start {file}");
        string command = string.Join(' ', arguments.Prepend(file));
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var expiry = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(expiry.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} did not finish within {timeout ?? DefaultTimeout}");
        }
        return new CommandResult(command, process.ExitCode, await output, await error);
    }

    /// <summary>The program's stdout; a non-zero exit throws with its stderr.</summary>
    public static string Output(string file, params string[] arguments) =>
        RunAsync(file, arguments).GetAwaiter().GetResult().EnsureSuccess().Output;
}
