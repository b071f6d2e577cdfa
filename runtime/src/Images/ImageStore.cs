using System.Text.Json;
using System.Text.RegularExpressions;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Images;

/// <summary>
/// The images the node has: records in images/images.json (written atomically), their parsed configs,
/// and lookup by any name the CRI allows. Pulls in progress hold leases on the blobs and layers they
/// use, so a concurrent RemoveImage never collects them.
/// </summary>
public sealed partial class ImageStore : IImageLookup
{
    private readonly string _path;
    private readonly ContentStore _content;
    private readonly Lock _gate = new();
    private readonly List<ImageRecord> _records;
    private readonly Dictionary<string, ImageRuntimeConfig> _configs = [];
    private readonly List<PullLease> _leases = [];

    public ImageStore(string imagesRoot, ContentStore content)
    {
        _path = Path.Combine(imagesRoot, "images.json");
        _content = content;
        _records = File.Exists(_path)
            ? JsonSerializer.Deserialize(File.ReadAllBytes(_path), ImageJsonContext.Default.ImageRecordFile)!.Images
            : [];
    }

    /// <summary>What a lookup matched: an image, and the tag when the name was a tag.</summary>
    public sealed record Match(ImageRecord Record, string? Tag);

    public StoredImage? Find(string reference)
    {
        lock (_gate)
        {
            return FindLocked(reference) is { } match ? ToStored(match.Record) : null;
        }
    }

    public IReadOnlyList<StoredImage> List()
    {
        lock (_gate)
        {
            return _records.Select(ToStored).ToList();
        }
    }

    /// <summary>Records a pulled image, merging names into an existing one with the same id; a tag moves to the newest image.</summary>
    public StoredImage Add(ImageRecord pulled)
    {
        lock (_gate)
        {
            foreach (var other in _records.Where(r => r.Id != pulled.Id))
            {
                other.RepoTags.RemoveAll(pulled.RepoTags.Contains);
            }
            var existing = _records.Find(r => r.Id == pulled.Id);
            if (existing is null)
            {
                _records.Add(pulled);
                existing = pulled;
            }
            else
            {
                existing.RepoTags = [.. existing.RepoTags.Union(pulled.RepoTags)];
                existing.RepoDigests = [.. existing.RepoDigests.Union(pulled.RepoDigests)];
                foreach (var (key, value) in pulled.Annotations) existing.Annotations[key] = value;
            }
            // An image whose last tag moved away stays, untagged, until it is removed (as containerd keeps it).
            Save();
            return ToStored(existing);
        }
    }

    public enum Removal { NotFound, TagRemoved, ImageRemoved }

    /// <summary>
    /// Removes what <paramref name="reference"/> names: only the tag when the image has other tags,
    /// else the whole image, unless <paramref name="isInUse"/> says a container still uses it.
    /// </summary>
    public Removal Remove(string reference, Func<string, bool> isInUse)
    {
        lock (_gate)
        {
            if (FindLocked(reference) is not { } match) return Removal.NotFound;
            var record = match.Record;
            if (match.Tag is not null && record.RepoTags.Count > 1)
            {
                record.RepoTags.Remove(match.Tag);
                Save();
                return Removal.TagRemoved;
            }
            if (isInUse(record.Id))
            {
                throw new WrongStateException($"image \"{reference}\" ({record.Id}) is used by a container; remove the container first");
            }
            _records.Remove(record);
            _configs.Remove(record.Id);
            Save();
            return Removal.ImageRemoved;
        }
    }

    /// <summary>The layers a root filesystem of the image stacks, bottom first; null for an unknown image.</summary>
    /// <exception cref="InvalidOperationException">The image is a checkpoint, which has no root filesystem: callers refuse it first
    /// (<see cref="CheckpointImages.RequireRootfsImage"/>).</exception>
    public IReadOnlyList<string>? DiffIdsOf(string imageId)
    {
        lock (_gate)
        {
            var record = _records.Find(r => r.Id == imageId);
            if (record?.Checkpoint is not null) throw new InvalidOperationException($"image {imageId} is a checkpoint and has no root filesystem layers");
            return record?.DiffIds;
        }
    }

    public ImageRecord? Record(string imageId)
    {
        lock (_gate)
        {
            return _records.Find(r => r.Id == imageId);
        }
    }

    /// <summary>
    /// Runs <paramref name="collect"/> with the blobs and layers that images or running pulls still need,
    /// under the store's lock, so no pull can lease something between the snapshot and the deletion.
    /// </summary>
    public void CollectUnreferenced(Action<HashSet<string>, HashSet<string>> collect)
    {
        lock (_gate)
        {
            var blobs = _records.SelectMany(r => r.Blobs).Concat(_leases.SelectMany(l => l.Blobs)).ToHashSet();
            var diffIds = _records.SelectMany(r => r.DiffIds).Concat(_leases.SelectMany(l => l.DiffIds)).ToHashSet();
            collect(blobs, diffIds);
        }
    }

    public PullLease Lease()
    {
        lock (_gate)
        {
            var lease = new PullLease(this);
            _leases.Add(lease);
            return lease;
        }
    }

    private Match? FindLocked(string reference)
    {
        if (reference.Length == 0) return null;
        string id = reference.StartsWith(ContentDigest.Prefix, StringComparison.Ordinal) ? reference : ContentDigest.Prefix + reference;
        if (_records.Find(r => r.Id == id) is { } byId) return new Match(byId, null);
        if (ImageReference.TryParse(reference, out var parsed, out _))
        {
            if (parsed.Digest is not null)
            {
                string repoDigest = parsed.RepoDigest(parsed.Digest);
                if (_records.Find(r => r.RepoDigests.Contains(repoDigest)) is { } byDigest) return new Match(byDigest, null);
            }
            else if (_records.Find(r => r.RepoTags.Contains(parsed.RepoTag!)) is { } byTag)
            {
                return new Match(byTag, parsed.RepoTag);
            }
        }
        // A short id, as crictl prints them: a unique prefix of the hex id.
        if (HexPrefix().IsMatch(id))
        {
            var candidates = _records.Where(r => r.Id.StartsWith(id, StringComparison.Ordinal)).Take(2).ToList();
            if (candidates.Count == 1) return new Match(candidates[0], null);
        }
        return null;
    }

    private StoredImage ToStored(ImageRecord record)
    {
        if (!_configs.TryGetValue(record.Id, out var config))
        {
            config = ImageConfigs.ToRuntimeConfig(ImageConfigs.Parse(_content.ReadAll(record.Id)));
            _configs[record.Id] = config;
        }
        return new StoredImage(record.Id, [.. record.RepoTags], [.. record.RepoDigests], record.Size, config, record.Pinned,
            new Dictionary<string, string>(record.Annotations));
    }

    private void Save() =>
        AtomicFile.Write(_path, JsonSerializer.SerializeToUtf8Bytes(new ImageRecordFile { Images = _records }, ImageJsonContext.Default.ImageRecordFile));

    [GeneratedRegex(@"^sha256:[a-f0-9]{3,63}\z")]
    private static partial Regex HexPrefix();

    /// <summary>Blobs and layers a pull is fetching or about to record; held until the pull ends.</summary>
    public sealed class PullLease(ImageStore store) : IDisposable
    {
        private readonly List<string> _blobs = [];
        private readonly List<string> _diffIds = [];

        internal IEnumerable<string> Blobs => _blobs;
        internal IEnumerable<string> DiffIds => _diffIds;

        public void Add(IEnumerable<string> blobs, IEnumerable<string> diffIds)
        {
            lock (store._gate)
            {
                _blobs.AddRange(blobs);
                _diffIds.AddRange(diffIds);
            }
        }

        public void Dispose()
        {
            lock (store._gate)
            {
                store._leases.Remove(this);
            }
        }
    }
}
