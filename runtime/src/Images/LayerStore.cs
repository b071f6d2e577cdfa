using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using CriShim.NativeInterop;
using CriShim.Runtime.Store;
using Microsoft.Win32.SafeHandles;

namespace CriShim.Runtime.Images;

/// <summary>
/// Unpacked layers, one directory per uncompressed digest (diff id): layers/&lt;hex&gt;/diff. Each has a
/// short link l/&lt;id&gt; -&gt; ../layers/&lt;hex&gt;/diff, so an overlay mount made from inside the
/// store's directory names its lower dirs in ~27 bytes each and a long chain fits the one-page limit
/// on mount options, as containers/storage does. A layer is unpacked in ingest/ and renamed in whole.
/// </summary>
public sealed class LayerStore
{
    private const string UsageFile = "usage.json";
    private const string LinkFile = "link";
    private const int LinkIdLength = 26;

    private readonly string _layers;
    private readonly string _links;
    private readonly string _ingest;
    private readonly ConcurrentDictionary<string, LayerUsage> _usage = new();

    public LayerStore(string imagesRoot, string ingestDirectory)
    {
        Home = imagesRoot;
        _layers = Path.Combine(imagesRoot, "layers");
        _links = Path.Combine(imagesRoot, "l");
        _ingest = ingestDirectory;
        StateDirectory.Create(_layers);
        StateDirectory.Create(_links);
        foreach (var layer in new DirectoryInfo(_layers).EnumerateDirectories())
        {
            string usagePath = Path.Combine(layer.FullName, UsageFile);
            if (File.Exists(usagePath))
            {
                _usage[ContentDigest.Prefix + layer.Name] = JsonSerializer.Deserialize(File.ReadAllBytes(usagePath), ImageJsonContext.Default.LayerUsage)!;
            }
        }
        // A crash between making a link and renaming its layer into place leaves the link dangling.
        foreach (var link in new DirectoryInfo(_links).EnumerateFileSystemInfos())
        {
            if (!Directory.Exists(link.FullName)) link.Delete();
        }
    }

    /// <summary>The directory that short links (l/...) are relative to: mounts run with it as working directory.</summary>
    public string Home { get; }

    public ulong UsedBytes => _usage.Values.Aggregate(0UL, (sum, u) => sum + u.Bytes);
    public ulong UsedInodes => _usage.Values.Aggregate(0UL, (sum, u) => sum + u.Inodes);

    public bool Has(string diffId) => _usage.ContainsKey(diffId);

    public IEnumerable<string> DiffIds => _usage.Keys;

    public string DiffDirectory(string diffId) => Path.Combine(LayerDirectory(diffId), "diff");

    /// <summary>"l/&lt;id&gt;", relative to <see cref="Home"/>.</summary>
    public string ShortLink(string diffId) => "l/" + File.ReadAllText(Path.Combine(LayerDirectory(diffId), LinkFile));

    /// <summary>
    /// An overlay's lower dirs for the layers, top layer first: their short links (relative to <see cref="Home"/>),
    /// or, for a user-namespaced pod, detached idmapped clones of them so the layers' host root shows as the
    /// pod's root. Dispose once mounted: the overlay holds its own references to the clones.
    /// </summary>
    public OverlayLowers Lowers(IReadOnlyList<string> diffIds, RootfsIdMap? idMap, string owner)
    {
        var missing = diffIds.Where(d => !Has(d)).ToList();
        if (missing.Count > 0) throw new NotFoundException($"layers {string.Join(", ", missing)} of {owner} are not in the store");
        var topFirst = diffIds.AsEnumerable().Reverse();
        if (idMap is null) return new OverlayLowers([.. topFirst.Select(ShortLink)], []);
        using var userNamespace = File.OpenHandle(idMap.UserNamespacePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var clones = new List<SafeFileHandle>();
        try
        {
            foreach (string diffId in topFirst) clones.Add(IdMappedMounts.CloneIdMapped(DiffDirectory(diffId), userNamespace));
            return new OverlayLowers([.. clones.Select(DirectoryHandles.ProcPath)], clones);
        }
        catch
        {
            foreach (var clone in clones) clone.Dispose();
            throw;
        }
    }

    /// <summary>An empty directory in ingest/ to unpack into; deleted on dispose unless committed.</summary>
    public PendingLayer BeginUnpack() => new(Path.Combine(_ingest, "layer-" + Guid.NewGuid().ToString("N")));

    /// <summary>Moves a completely unpacked and verified layer into place.</summary>
    public void Commit(PendingLayer pending, string diffId, LayerUsage usage)
    {
        string final = LayerDirectory(diffId);
        if (Directory.Exists(final)) return; // another pull got there first; pending is discarded
        string linkId = RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", LinkIdLength);
        AtomicFile.WriteText(Path.Combine(pending.Path, LinkFile), linkId);
        AtomicFile.Write(Path.Combine(pending.Path, UsageFile), JsonSerializer.SerializeToUtf8Bytes(usage, ImageJsonContext.Default.LayerUsage));
        File.CreateSymbolicLink(Path.Combine(_links, linkId), Path.Combine("..", "layers", ContentDigest.Hex(diffId), "diff"));
        Directory.Move(pending.Path, final);
        AtomicFile.SyncDirectory(_layers);
        pending.Committed = true;
        _usage[diffId] = usage;
    }

    public void Delete(string diffId)
    {
        string directory = LayerDirectory(diffId);
        string linkPath = Path.Combine(directory, LinkFile);
        if (File.Exists(linkPath)) File.Delete(Path.Combine(_links, File.ReadAllText(linkPath)));
        _usage.TryRemove(diffId, out _);
        // Renamed away first, so a crash mid-delete never leaves a half-empty layer under its real name.
        string doomed = Path.Combine(_ingest, "deleted-" + Guid.NewGuid().ToString("N"));
        Directory.Move(directory, doomed);
        Directory.Delete(doomed, recursive: true);
    }

    private string LayerDirectory(string diffId) => Path.Combine(_layers, ContentDigest.Hex(ContentDigest.Require(diffId, "layer")));

    public sealed class PendingLayer : IDisposable
    {
        internal PendingLayer(string path)
        {
            Path = path;
            StateDirectory.Create(path);
            // The layer's root: its mode is the image's "/" where it is the top layer of an image volume.
            StateDirectory.Create(DiffDirectory, StateDirectory.Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
                UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        public string Path { get; }
        public string DiffDirectory => System.IO.Path.Combine(Path, "diff");
        internal bool Committed { get; set; }

        public void Dispose()
        {
            if (!Committed && Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>Lower dirs of an overlay, top layer first, with the idmapped clones they name held open until disposed.</summary>
public sealed class OverlayLowers(IReadOnlyList<string> paths, List<SafeFileHandle> clones) : IDisposable
{
    public IReadOnlyList<string> Paths { get; } = paths;

    public void Dispose()
    {
        foreach (var clone in clones) clone.Dispose();
    }
}
