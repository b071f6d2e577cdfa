using System.Diagnostics;

namespace CriShim.Integration.Harness;

/// <summary>
/// What a failed test can leave under a daemon's temp dir: containers still run by conmon, runtime
/// state, overlay and tmpfs mounts. Cleared before the dir is deleted so one failure does not leak
/// into the next test or a later run.
/// </summary>
public static class Leftovers
{
    public static void Clear(string baseDir)
    {
        foreach (var (runtime, root) in new[] { ("/usr/bin/runc", "runc"), ("/usr/bin/crun", "crun"), ("/opt/crishim/crun/bin/crun", "crun"), ("/opt/crishim/runc/bin/runc", "runc") })
        {
            string stateRoot = Path.Combine(baseDir, "run", root);
            if (!Directory.Exists(stateRoot) || !File.Exists(runtime)) continue;
            foreach (string container in Directory.GetDirectories(stateRoot))
            {
                Run(runtime, "--root", stateRoot, "delete", "--force", Path.GetFileName(container));
            }
        }
        foreach (var process in Process.GetProcessesByName("conmon"))
        {
            try
            {
                if (File.ReadAllText($"/proc/{process.Id}/cmdline").Contains(baseDir, StringComparison.Ordinal)) process.Kill();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                // Already gone.
            }
        }
        var mounts = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4].Replace("\\040", " "))
            .Where(mountPoint => mountPoint.StartsWith(baseDir + "/", StringComparison.Ordinal))
            .OrderByDescending(mountPoint => mountPoint.Length);
        foreach (string mountPoint in mounts) Run("umount", "-l", mountPoint);
    }

    private static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        process.WaitForExit();
    }
}
