namespace CriShim.Runtime.Exec;

/// <summary>
/// One process, told apart from any later holder of its pid: the pid, its start time (clock ticks
/// after boot, field 22 of /proc/&lt;pid&gt;/stat) and the boot it ran in. Recorded when a process is
/// created, it says for certain whether that very process still runs: a reused pid has another
/// start time, and after a reboot every recorded process is gone.
/// </summary>
public sealed record ProcessIdentity(int Pid, ulong StartTime, string BootId)
{
    private static readonly Lazy<string> Boot = new(() => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim());

    /// <summary>This boot's id (/proc/sys/kernel/random/boot_id).</summary>
    public static string CurrentBootId => Boot.Value;

    /// <summary>
    /// A process known to have ended before its identity could be read (of no boot, so never alive): what is recorded
    /// of a monitor that died while the daemon was down, so the container reads as unmonitored.
    /// </summary>
    public static ProcessIdentity Gone { get; } = new(0, 0, "");

    /// <summary>The identity of the live process <paramref name="pid"/>; null when there is none.</summary>
    public static ProcessIdentity? Of(int pid) =>
        pid > 0 && ProcessStat.Read(pid) is { IsRunning: true } stat ? new ProcessIdentity(pid, stat.StartTime, CurrentBootId) : null;

    /// <summary>True while this very process runs (a zombie has ended: only its exit status is left).</summary>
    public bool IsAlive() => IsSameProcess(CurrentBootId, ProcessStat.Read(Pid));

    /// <summary>Whether <paramref name="current"/>, what /proc now says of <see cref="Pid"/> in boot <paramref name="bootId"/>, is this process, still running.</summary>
    public bool IsSameProcess(string bootId, ProcessStat? current) =>
        bootId == BootId && current is { IsRunning: true } stat && stat.StartTime == StartTime;

    public override string ToString() => $"pid {Pid} (started at tick {StartTime} of boot {BootId})";
}

/// <summary>The parts of /proc/&lt;pid&gt;/stat the daemon uses.</summary>
public sealed record ProcessStat(char State, ulong StartTime)
{
    /// <summary>Not a zombie (Z) nor dead (X): the process has not ended.</summary>
    public bool IsRunning => State is not ('Z' or 'X' or 'x');

    /// <summary>Null when there is no such process. Every list and status call asks this per container: read in three system calls.</summary>
    public static ProcessStat? Read(int pid) =>
        NativeInterop.PseudoFiles.ReadText($"/proc/{pid}/stat") is { } stat ? Parse(stat) : null;

    /// <summary>
    /// Parses a stat line. The command name (field 2) is in parentheses and may itself hold spaces and
    /// parentheses, so the fields after it are counted from the last ')'.
    /// </summary>
    public static ProcessStat? Parse(string stat)
    {
        int end = stat.LastIndexOf(')');
        if (end < 0 || end + 2 >= stat.Length) return null;
        // After ") ": field 3 (state) is at index 0, field 22 (starttime) at index 19.
        string[] fields = stat[(end + 2)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 20 || fields[0].Length != 1 || !ulong.TryParse(fields[19], out ulong startTime)) return null;
        return new ProcessStat(fields[0][0], startTime);
    }
}
