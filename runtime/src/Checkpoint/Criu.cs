using System.Text.RegularExpressions;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Checkpoint;

/// <summary>What the daemon found out about CRIU at start-up.</summary>
public sealed record CriuStatus(bool Usable, string Version, int VersionNumber, string Detail);

/// <summary>The CRIU binary: its version and `criu check`. Dumps go through the OCI runtime, not here.</summary>
public sealed partial class Criu(string path)
{
    /// <summary>3.16, the oldest CRIU that CRI-O and the kubelet accept for container checkpoints.</summary>
    public const int MinimumVersion = 31600;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly ExternalCommand _command = new("criu", path);

    [GeneratedRegex(@"Version:\s*(\d+)\.(\d+)(?:\.(\d+))?")]
    private static partial Regex VersionLine();

    /// <summary>Parses `criu --version` into (text, 10000*major + 100*minor + patch).</summary>
    public static (string Text, int Number)? ParseVersion(string output)
    {
        var match = VersionLine().Match(output);
        if (!match.Success) return null;
        int major = int.Parse(match.Groups[1].Value), minor = int.Parse(match.Groups[2].Value);
        int patch = match.Groups[3].Success ? int.Parse(match.Groups[3].Value) : 0;
        string text = match.Groups[3].Success ? $"{major}.{minor}.{patch}" : $"{major}.{minor}";
        return (text, major * 10000 + minor * 100 + patch);
    }

    /// <summary>Runs `criu --version` and `criu check`; never throws, the result says what is wrong.</summary>
    public async Task<CriuStatus> ProbeAsync(CancellationToken cancellationToken)
    {
        CommandOutput versionOutput;
        try
        {
            versionOutput = await _command.RunAsync(["--version"], Timeout, cancellationToken);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            return new CriuStatus(false, "", 0, $"CRIU binary not found or not runnable: {e.Message}");
        }
        if (ParseVersion(versionOutput.StandardOutput) is not var (text, number))
        {
            return new CriuStatus(false, "", 0, $"cannot read the CRIU version from: {versionOutput.StandardOutput.Trim()}");
        }
        if (number < MinimumVersion)
        {
            return new CriuStatus(false, text, number, $"CRIU {text} is too old (need >= 3.16)");
        }
        try
        {
            var check = await _command.RunAsync(["check"], Timeout, cancellationToken, allowFailure: true);
            string said = (check.StandardOutput + check.StandardError).Trim();
            return check.ExitCode == 0
                ? new CriuStatus(true, text, number, said.Split('\n').Last().Trim())
                : new CriuStatus(false, text, number, $"criu check failed: {said}");
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            return new CriuStatus(false, text, number, $"criu check failed: {e.Message}");
        }
    }
}
