namespace CriShim.Runtime.Oci;

/// <summary>Reads a running process's cgroup figures, on cgroup v1 and v2.</summary>
public static class ContainerCgroup
{
    /// <summary>Memory charged to the process's cgroup, in bytes; 0 when it cannot be read.</summary>
    public static ulong MemoryUsageBytes(int pid)
    {
        string cgroupFile = $"/proc/{pid}/cgroup";
        if (!File.Exists(cgroupFile)) return 0;
        foreach (string line in File.ReadLines(cgroupFile))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            string candidate = parts[1].Split(',').Contains("memory")
                ? $"/sys/fs/cgroup/memory{parts[2]}/memory.usage_in_bytes"
                : parts[0] == "0" && parts[1].Length == 0 ? $"/sys/fs/cgroup{parts[2]}/memory.current" : "";
            if (candidate.Length > 0 && File.Exists(candidate) && ulong.TryParse(File.ReadAllText(candidate).Trim(), out ulong bytes))
            {
                return bytes;
            }
        }
        return 0;
    }
}
