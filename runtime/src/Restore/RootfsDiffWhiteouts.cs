namespace CriShim.Runtime.Restore;

/// <summary>
/// The OCI whiteouts of a rootfs diff: containerd writes its diff as an OCI layer, with <c>.wh.name</c> for a
/// removed path and <c>.wh..wh..opq</c> for a directory whose image content is gone (CRI-O's diff has none; it
/// lists deletions in deleted.files). They apply to the image below the diff, so a restore deletes them from
/// the new container's rootfs before it unpacks the diff's other entries.
/// </summary>
/// <param name="Removed">Container paths (relative to its root) a whiteout removes.</param>
/// <param name="Emptied">Directories whose image entries an opaque marker removes.</param>
public sealed record RootfsDiffWhiteouts(IReadOnlyList<string> Removed, IReadOnlyList<string> Emptied)
{
    private const string Prefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    public static RootfsDiffWhiteouts None { get; } = new([], []);

    /// <summary>Whether an entry of the diff (a normalized relative path) is a whiteout or other ".wh." bookkeeping, which is not unpacked.</summary>
    public static bool IsWhiteout(string relative) => Path.GetFileName(relative).StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Collects the whiteouts among a diff's normalized entry names; one that names no entry is an InvalidRequestException.</summary>
    public sealed class Collector(string what)
    {
        private readonly List<string> _removed = [];
        private readonly List<string> _emptied = [];

        public void Add(string relative)
        {
            if (!IsWhiteout(relative)) return;
            string parent = Path.GetDirectoryName(relative) ?? "";
            string name = Path.GetFileName(relative);
            if (name == OpaqueMarker)
            {
                _emptied.Add(parent);
                return;
            }
            if (name.StartsWith(Prefix + Prefix, StringComparison.Ordinal)) return; // AUFS bookkeeping, as LayerUnpacker skips it
            string removed = name[Prefix.Length..];
            // ".wh.", ".wh.." and ".wh..." would remove the parent or grandparent, not an entry of it.
            if (removed is "" or "." or "..") throw new InvalidRequestException($"{what}: entry \"{relative}\" is a whiteout that names no entry");
            _removed.Add(parent.Length > 0 ? $"{parent}/{removed}" : removed);
        }

        public RootfsDiffWhiteouts ToWhiteouts() => _removed.Count == 0 && _emptied.Count == 0 ? None : new(_removed, _emptied);
    }
}
