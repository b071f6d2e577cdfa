using System.Text.RegularExpressions;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Checkpoint;

/// <summary>What the daemon found out about CRIU at start-up.</summary>
/// <param name="KnownProblem">Why this CRIU is known to fail some dumps on the running kernel; empty when none is known.</param>
public sealed record CriuStatus(bool Usable, string Version, int VersionNumber, string Detail, string KnownProblem = "");

/// <summary>The CRIU binary: its version and `criu check`. Dumps go through the OCI runtime, not here.</summary>
public sealed partial class Criu(string path)
{
    /// <summary>3.16, the oldest CRIU that CRI-O and the kubelet accept for container checkpoints.</summary>
    public const int MinimumVersion = 31600;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly ExternalCommand _command = new("criu", path);

    /// <summary>4.2, the first CRIU that dumps sockets on Linux 6.16 and later (criu#2705).</summary>
    private const int SocketOptionsFixedVersion = 40200;
    private static readonly Version SocketOptionsRestrictedKernel = new(6, 16);

    [GeneratedRegex(@"Version:\s*(\d+)\.(\d+)(?:\.(\d+))?")]
    private static partial Regex VersionLine();

    [GeneratedRegex(@"^(\d+)\.(\d+)")]
    private static partial Regex KernelRelease();

    /// <summary>
    /// Why CRIU <paramref name="versionNumber"/> is known to fail on kernel <paramref name="kernelRelease"/>
    /// (as uname -r prints it), or null. Linux 6.16 made SO_PASSCRED/SO_PASSSEC fail on sockets that
    /// are not unix or netlink; CRIU before 4.2 reads them on every socket and aborts the dump.
    /// </summary>
    public static string? KnownKernelProblem(int versionNumber, string kernelRelease)
    {
        var match = KernelRelease().Match(kernelRelease.Trim());
        if (!match.Success) return null;
        var kernel = new Version(int.Parse(match.Groups[1].Value), int.Parse(match.Groups[2].Value));
        if (versionNumber >= SocketOptionsFixedVersion || kernel < SocketOptionsRestrictedKernel) return null;
        return $"CRIU {versionNumber / 10000}.{versionNumber / 100 % 100}.{versionNumber % 100} cannot checkpoint a container holding a TCP/UDP socket " +
            $"on Linux {kernelRelease.Trim()}: since 6.16 the kernel refuses SO_PASSCRED/SO_PASSSEC on such sockets and CRIU before 4.2 aborts the dump " +
            "(\"sockets: Can't get 1:16 opt: Operation not supported\", criu#2705); install CRIU >= 4.2";
    }

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

    /// <summary>
    /// What to quote of a failed dump's log: its first <c>Error</c> lines, which say what failed, then
    /// its last lines, which say how far the dump got (a failed dump's log ends in routine lines such
    /// as "Unfreezing tasks"). Each line is cut at <see cref="MaxExcerptLineLength"/> characters.
    /// </summary>
    public static string DumpLogExcerpt(IEnumerable<string> lines, int errorLines = 5, int tailLines = 5)
    {
        var errors = new List<(int Number, string Text)>();
        var tail = new Queue<(int Number, string Text)>();
        int number = 0;
        foreach (string line in lines)
        {
            number++;
            if (line.Length == 0) continue;
            string cut = line.Length > MaxExcerptLineLength ? line[..MaxExcerptLineLength] + "…" : line;
            if (errors.Count < errorLines && ErrorLine().IsMatch(line)) errors.Add((number, cut));
            tail.Enqueue((number, cut));
            if (tail.Count > tailLines) tail.Dequeue();
        }
        var quoted = errors.Concat(tail.Where(t => errors.Count == 0 || t.Number > errors[^1].Number)).ToList();
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < quoted.Count; i++)
        {
            if (i > 0) text.Append(quoted[i].Number == quoted[i - 1].Number + 1 ? "\n" : "\n…\n");
            text.Append(quoted[i].Text);
        }
        return text.ToString();
    }

    private const int MaxExcerptLineLength = 400;

    /// <summary>
    /// CRIU's "(00.211638) Error (criu/sockets.c:628): ..." lines, also from its parasite ("pie: 12: Error ...") and from
    /// the tasks a restore forks ("(01.399481)      6: Error ...").
    /// </summary>
    [GeneratedRegex(@"^(?:\(\s*[\d.]+\)\s+)?(?:\d+:\s+)?(?:pie:\s*\d+:\s+)?Error\b")]
    private static partial Regex ErrorLine();

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
            string knownProblem = KnownKernelProblem(number, await File.ReadAllTextAsync("/proc/sys/kernel/osrelease", cancellationToken)) ?? "";
            return check.ExitCode == 0
                ? new CriuStatus(true, text, number, said.Split('\n').Last().Trim(), knownProblem)
                : new CriuStatus(false, text, number, $"criu check failed: {said}", knownProblem);
        }
        catch (Exception e) when (e is ExternalCommandException or TimeoutException)
        {
            return new CriuStatus(false, text, number, $"criu check failed: {e.Message}");
        }
    }
}
