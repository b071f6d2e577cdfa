namespace CriShim.Runtime.Exec;

/// <summary>Processes and their descendants, read from /proc.</summary>
public static class ProcessTree
{
    private const int SigKill = 9;
    private const int SigStop = 19;

    /// <summary>How much of a command line is read: the arguments looked for come early, and a process sets its own.</summary>
    private const int CommandLineLimit = 64 * 1024;

    /// <summary>Every live process (pid to parent pid).</summary>
    public static Dictionary<int, int> ParentsByPid()
    {
        var parents = new Dictionary<int, int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // After the parenthesised command name come: state, ppid, ...
                parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
        }
        return parents;
    }

    /// <summary>The roots and all their descendants.</summary>
    public static HashSet<int> WithDescendants(IEnumerable<int> roots)
    {
        var parents = ParentsByPid();
        var tree = new HashSet<int>(roots);
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (pid, parent) in parents)
            {
                if (tree.Contains(parent) && tree.Add(pid)) grew = true;
            }
        }
        return tree;
    }

    /// <summary>The processes one of whose arguments is exactly <paramref name="argument"/> (a path a tool was given).</summary>
    public static List<int> Naming(string argument) =>
        ParentsByPid().Keys.Where(pid => Arguments(pid).Contains(argument, StringComparer.Ordinal)).ToList();

    private static string[] Arguments(int pid)
    {
        // Every process is looked at: one pooled buffer and three system calls each (PseudoFiles), not a new 64 KiB array.
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(CommandLineLimit);
        try
        {
            int length = NativeInterop.PseudoFiles.Read($"/proc/{pid}/cmdline", buffer.AsSpan(0, CommandLineLimit));
            return length < 0 ? [] : System.Text.Encoding.UTF8.GetString(buffer, 0, length).Split('\0'); // -1: ended while we looked.
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// SIGKILLs the roots and every descendant. Each is stopped first, and the tree looked at again until it stops
    /// growing, so a process forked meanwhile (CRIU restoring tasks, a shell's next command) cannot escape by
    /// re-parenting once its parent dies.
    /// </summary>
    public static void Kill(IEnumerable<int> roots)
    {
        var stopped = new HashSet<int>();
        try
        {
            for (var found = WithDescendants(roots); found.Except(stopped).ToList() is { Count: > 0 } fresh; found = WithDescendants(stopped))
            {
                foreach (int pid in fresh)
                {
                    NativeInterop.Processes.Kill(pid, SigStop);
                    stopped.Add(pid);
                }
            }
        }
        finally
        {
            foreach (int pid in stopped) NativeInterop.Processes.Kill(pid, SigKill);
        }
    }
}
