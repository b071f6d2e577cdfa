using CriShim.Runtime.Stats;

namespace CriShim.Runtime.Oci;

/// <summary>A running process's cgroup figures that container operations need, from the one <see cref="CgroupReader"/>.</summary>
public static class ContainerCgroup
{
    /// <summary>Memory charged to the process's cgroup, in bytes; 0 when it cannot be read.</summary>
    public static ulong MemoryUsageBytes(int pid) => CgroupReader.Host.ReadProcess(pid)?.MemoryUsageBytes ?? 0;
}
