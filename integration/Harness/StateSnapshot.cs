namespace CriShim.Integration.Harness;

/// <summary>
/// What a daemon holds on the machine at one moment: the file trees of its root and run root, the
/// mounts under its base dir, its child processes and conmons, and the pod IPs leased from its test
/// network. Two snapshots taken with no pod, container or image in between must not differ but for
/// what the daemon legitimately keeps.
/// </summary>
public sealed record StateSnapshot(
    IReadOnlySet<string> Files, IReadOnlySet<string> Mounts, IReadOnlySet<string> Processes, IReadOnlySet<string> Leases)
{
    /// <summary>
    /// State the daemon keeps by design: the pod CIDR of UpdateRuntimeConfig survives restarts; the
    /// parent of checkpoint work dirs is made by the first checkpoint (what is in it is a leftover).
    /// </summary>
    private static readonly HashSet<string> KeptFiles = ["root/network-runtime-config.json", "root/checkpoints"];

    public static StateSnapshot Take(Daemon daemon)
    {
        var files = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (label, dir) in new[] { ("root", daemon.Dirs.Root), ("run_root", daemon.Dirs.RunRoot) })
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries(dir, "*", new EnumerationOptions
                     { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
            {
                files.Add($"{label}/{Path.GetRelativePath(dir, entry)}");
            }
        }
        var mounts = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4].Replace("\\040", " "))
            .Where(mountPoint => mountPoint.StartsWith(daemon.Dirs.Base + "/", StringComparison.Ordinal))
            .ToHashSet(StringComparer.Ordinal);
        string leaseDir = TestNetwork.ClaimFor(daemon.Dirs.Base).LeaseDir();
        var leases = Directory.Exists(leaseDir)
            ? Directory.GetFiles(leaseDir).Select(file => Path.GetFileName(file)).Where(name => System.Net.IPAddress.TryParse(name, out _)).ToHashSet(StringComparer.Ordinal)
            : [];
        return new StateSnapshot(files, mounts, ProcessesOf(daemon), leases);
    }

    /// <summary>Children of the daemon, and any process (a conmon, a container) started with its base dir on the command line.</summary>
    private static HashSet<string> ProcessesOf(Daemon daemon)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (string dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == daemon.ProcessId) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
                int parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                string commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Trim();
                if (parent == daemon.ProcessId || commandLine.Contains(daemon.Dirs.Base, StringComparison.Ordinal))
                {
                    found.Add($"{pid} {commandLine}");
                }
            }
            catch (IOException)
            {
                // Ended while we looked.
            }
        }
        return found;
    }

    /// <summary>Everything here that <paramref name="baseline"/> did not have, one line each.</summary>
    public IEnumerable<string> LeftoversSince(StateSnapshot baseline) =>
        Files.Except(baseline.Files).Except(KeptFiles).Select(file => "file " + file)
            .Concat(Mounts.Except(baseline.Mounts).Select(mount => "mount " + mount))
            .Concat(Processes.Except(baseline.Processes).Select(process => "process " + process))
            .Concat(Leases.Except(baseline.Leases).Select(lease => "leased pod IP " + lease))
            .Order(StringComparer.Ordinal);
}
