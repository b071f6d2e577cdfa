namespace CriShim.Runtime.Store;

/// <summary>
/// How every directory of the daemon's state is made: with an explicit mode, set by chmod after mkdir so
/// the umask neither widens nor narrows it. Private (0700) unless a caller writes down why not, since image
/// layers and writable layers hold set-id files and secrets that no host user may reach (CVE-2021-41091).
/// </summary>
public static class StateDirectory
{
    /// <summary>rwx------: the default for every state directory.</summary>
    public const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>rwx--x--x: searchable, not listable; only on the path a pod user namespace's root must walk.</summary>
    public const UnixFileMode Traversable = Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>rwx--x---: searchable by one group only (a pod user namespace's root group).</summary>
    public const UnixFileMode GroupTraversable = Private | UnixFileMode.GroupExecute;

    /// <summary>
    /// Creates <paramref name="path"/> with <paramref name="mode"/> and any missing parents 0700; a directory that
    /// exists keeps its mode. Returns the path.
    /// </summary>
    public static string Create(string path, UnixFileMode mode = Private)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) return full;
        string? parent = Path.GetDirectoryName(full);
        if (parent is not null && !Directory.Exists(parent)) Create(parent);
        try
        {
            Directory.CreateDirectory(full, mode);
        }
        catch (IOException) when (Directory.Exists(full))
        {
            return full; // made by a concurrent caller, with its mode
        }
        File.SetUnixFileMode(full, mode);
        return full;
    }

    /// <summary>
    /// Creates <paramref name="path"/> if needed and makes it root:<paramref name="gid"/> 0710: the one directory of a pod
    /// or container that the pod user namespace's root group may search, and no other host user.
    /// </summary>
    public static void OpenToGroup(string path, uint gid)
    {
        Create(path);
        CriShim.NativeInterop.FileNodes.ChangeOwner(path, 0, (int)gid);
        File.SetUnixFileMode(path, GroupTraversable);
    }

    /// <summary>
    /// At start-up: the state roots and every directory right below them become 0700, whatever an older
    /// version or an operator left, so an upgraded node is closed too. <paramref name="groupSearchable"/> (the
    /// socket's directory, when it is a root) keeps group search, so the socket's group can reach the socket.
    /// </summary>
    public static void Tighten(IEnumerable<string> roots, string? groupSearchable)
    {
        foreach (string root in roots.Select(Path.GetFullPath))
        {
            Create(root);
            File.SetUnixFileMode(root, root == groupSearchable ? GroupTraversable : Private);
            foreach (var directory in new DirectoryInfo(root).EnumerateDirectories())
            {
                if (directory.LinkTarget is null) directory.UnixFileMode = Private;
            }
        }
    }
}
