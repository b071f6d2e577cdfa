using CriShim.Runtime.Store;

namespace CriShim.Runtime.Containers;

/// <summary>The uid, gids and home a container process runs with.</summary>
public sealed record ResolvedUser(long Uid, long Gid, IReadOnlyList<long> AdditionalGids, string Home);

/// <summary>
/// Resolves the user of a container from the CRI security context and the image's USER, reading
/// the image's own /etc/passwd and /etc/group, as the kubelet expects runtimes to.
/// </summary>
public static class ContainerUserResolver
{
    private sealed record PasswdEntry(string Name, long Uid, long Gid, string Home);
    private sealed record GroupEntry(string Name, long Gid, IReadOnlyList<string> Members);

    /// <param name="rootfs">The mounted container rootfs.</param>
    /// <param name="runAsUser">SecurityContext.run_as_user, if set.</param>
    /// <param name="runAsUsername">SecurityContext.run_as_username ("" if unset).</param>
    /// <param name="runAsGroup">SecurityContext.run_as_group, if set.</param>
    /// <param name="imageUser">The image config's User ("", "name", "uid", "uid:gid", "name:group").</param>
    /// <param name="supplementalGroups">SecurityContext.supplemental_groups.</param>
    /// <param name="strictGroups">SupplementalGroupsPolicy Strict: ignore group memberships from the image.</param>
    public static ResolvedUser Resolve(string rootfs, long? runAsUser, string runAsUsername, long? runAsGroup,
        string imageUser, IEnumerable<long> supplementalGroups, bool strictGroups)
    {
        var passwd = ReadPasswd(rootfs, "etc/passwd");
        var groups = ReadGroups(rootfs, "etc/group");

        string userPart = imageUser, groupPart = "";
        int colon = imageUser.IndexOf(':');
        if (colon >= 0)
        {
            userPart = imageUser[..colon];
            groupPart = imageUser[(colon + 1)..];
        }
        if (runAsUser is not null || runAsUsername.Length > 0)
        {
            // The security context replaces the image's user, and with it the image's group.
            userPart = runAsUser?.ToString() ?? runAsUsername;
            groupPart = "";
        }

        PasswdEntry? entry;
        long uid;
        if (userPart.Length == 0)
        {
            uid = 0;
            entry = passwd.FirstOrDefault(p => p.Uid == 0);
        }
        else if (long.TryParse(userPart, out uid))
        {
            entry = passwd.FirstOrDefault(p => p.Uid == uid);
        }
        else
        {
            entry = passwd.FirstOrDefault(p => p.Name == userPart)
                ?? throw new InvalidRequestException($"user \"{userPart}\" is not in the image's /etc/passwd");
            uid = entry.Uid;
        }

        long gid = entry?.Gid ?? 0;
        if (groupPart.Length > 0)
        {
            gid = long.TryParse(groupPart, out long numeric)
                ? numeric
                : groups.FirstOrDefault(g => g.Name == groupPart)?.Gid
                  ?? throw new InvalidRequestException($"group \"{groupPart}\" is not in the image's /etc/group");
        }
        if (runAsGroup is not null) gid = runAsGroup.Value;

        var additional = new List<long>();
        if (!strictGroups && entry is not null)
        {
            additional.AddRange(groups.Where(g => g.Members.Contains(entry.Name)).Select(g => g.Gid));
        }
        additional.AddRange(supplementalGroups);
        var distinct = additional.Where(g => g != gid).Distinct().ToList();
        return new ResolvedUser(uid, gid, distinct, entry?.Home is { Length: > 0 } home ? home : "/");
    }

    /// <summary>An image's account files are small; a bigger one is not read past this.</summary>
    private const int AccountFileLimit = 4 << 20;

    private static List<PasswdEntry> ReadPasswd(string rootfs, string path) =>
        ReadColonFile(rootfs, path, 6, f => long.TryParse(f[2], out long uid) && long.TryParse(f[3], out long gid)
            ? new PasswdEntry(f[0], uid, gid, f[5])
            : null);

    private static List<GroupEntry> ReadGroups(string rootfs, string path) =>
        ReadColonFile(rootfs, path, 4, f => long.TryParse(f[2], out long gid)
            ? new GroupEntry(f[0], gid, f[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : null);

    /// <summary>Reads the file as the image means it: symlinks (of /etc too) resolve inside the rootfs, never to the host's files.</summary>
    private static List<T> ReadColonFile<T>(string rootfs, string path, int minFields, Func<string[], T?> parse) where T : class
    {
        var content = BoundedFile.ReadInRoot(rootfs, path, AccountFileLimit, $"the image's /{path}");
        if (content is null) return [];
        return System.Text.Encoding.UTF8.GetString(content).Split('\n')
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.Split(':'))
            .Where(fields => fields.Length >= minFields)
            .Select(parse)
            .OfType<T>()
            .ToList();
    }
}
