using CriShim.TestImages;
using System.Text.Json;

namespace CriShim.Integration.Harness;

/// <summary>Faults a node suffers, done to a daemon's pods and containers from outside: kill -9 of conmon and friends, a reboot.</summary>
public static class NodeFaults
{
    /// <summary>The container's conmon, as it recorded itself in the bundle.</summary>
    public static int ConmonPid(DaemonDirs dirs, string containerId) =>
        int.Parse(File.ReadAllText(Path.Combine(dirs.Root, "containers", containerId, "bundle", "conmon.pid")).Trim());

    /// <summary>The container's init process (ContainerStatus verbose info).</summary>
    public static async Task<int> InitPidAsync(Daemon daemon, string containerId)
    {
        var verbose = await daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = containerId, Verbose = true });
        return JsonDocument.Parse(verbose.Info["info"]).RootElement.GetProperty("pid").GetInt32();
    }

    public static void Kill(int pid) => HostCommand.Output("kill", "-KILL", pid.ToString());

    /// <summary>The live processes one of whose arguments is <paramref name="argument"/> (conmon and the runtime name their bundle), with their arguments.</summary>
    public static Dictionary<int, string[]> ProcessesNaming(string argument)
    {
        var found = new Dictionary<int, string[]>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                string[] arguments = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (arguments.Contains(argument) && IsRunning(pid)) found[pid] = arguments;
            }
            catch (IOException)
            {
                // Ended while we looked.
            }
        }
        return found;
    }

    /// <summary>Alive and not a zombie.</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// What a reboot does to the daemon's node, after the daemon was killed: every conmon and every
    /// process of its pods and containers dies, every mount goes (run root, rootfs overlays), the
    /// run root (a tmpfs on a real node) comes back empty, and the cgroups are gone. The state root
    /// stays, as a disk does. No runtime command runs: a reboot runs none.
    /// </summary>
    public static void SimulateReboot(DaemonDirs dirs)
    {
        var parents = new Dictionary<int, int>();
        var monitors = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(dirs.Base, StringComparison.Ordinal)) monitors.Add(pid);
            }
            catch (IOException)
            {
            }
        }
        // conmon is every container's subreaper, so its descendants are the container's processes (the infra's too).
        var doomed = new HashSet<int>(monitors);
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (pid, parent) in parents)
            {
                if (doomed.Contains(parent) && doomed.Add(pid)) grew = true;
            }
        }
        // The pods' processes die first, while their conmons still reap them: this VM's PID 1 reaps no
        // orphan, and a pid namespace's init (the infra's catatonit) never finishes dying while a zombie
        // of its namespace is left unreaped. Some may have ended meanwhile: kill's failure for those does not matter.
        var containerProcesses = doomed.Except(monitors).ToList();
        foreach (int pid in containerProcesses) HostCommand.RunAsync("kill", ["-KILL", pid.ToString()]).GetAwaiter().GetResult();
        var settled = DateTime.UtcNow.AddSeconds(10);
        while (containerProcesses.Any(IsRunning) && DateTime.UtcNow < settled) Thread.Sleep(20);
        foreach (int pid in monitors) HostCommand.RunAsync("kill", ["-KILL", pid.ToString()]).GetAwaiter().GetResult();
        var mounts = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4].Replace("\\040", " "))
            .Where(mountPoint => mountPoint.StartsWith(dirs.Base + "/", StringComparison.Ordinal))
            .OrderByDescending(mountPoint => mountPoint.Length);
        foreach (string mountPoint in mounts) HostCommand.Output("umount", "-l", mountPoint);
        foreach (string entry in Directory.EnumerateFileSystemEntries(dirs.RunRoot))
        {
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else File.Delete(entry);
        }
        foreach (string cgroup in CgroupsOf(dirs)) RemoveWhenEmptied(cgroup);
    }

    /// <summary>The cgroup directories of the daemon's pods and containers (cgroupfs driver, default parent).</summary>
    public static List<string> CgroupsOf(DaemonDirs dirs)
    {
        var ids = new[] { "pods", "containers" }.Select(kind => Path.Combine(dirs.Root, kind)).Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories).Select(Path.GetFileName).ToHashSet();
        return Directory.EnumerateDirectories("/sys/fs/cgroup")
            .Select(controller => Path.Combine(controller, "crishim"))
            .Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories)
            .Where(cgroup => Path.GetFileName(cgroup) is { } name && name.StartsWith("crishim-", StringComparison.Ordinal) && ids.Contains(name["crishim-".Length..]))
            .ToList();
    }

    /// <summary>A cgroup can go once its killed processes have left it.</summary>
    private static void RemoveWhenEmptied(string cgroup)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                Directory.Delete(cgroup);
                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }
        }
    }
}
