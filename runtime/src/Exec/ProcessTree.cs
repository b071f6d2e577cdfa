namespace CriShim.Runtime.Exec;

/// <summary>Processes and their descendants, read from /proc.</summary>
public static class ProcessTree
{
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

    /// <summary>SIGKILLs the roots and every descendant, found before any dies so none escapes by re-parenting.</summary>
    public static void Kill(IEnumerable<int> roots)
    {
        foreach (int pid in WithDescendants(roots)) NativeInterop.Processes.Kill(pid, 9);
    }
}
