using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace CriShim.Runtime.Store;

/// <summary>Something with an id that the daemon persists.</summary>
public interface IRecord
{
    string Id { get; }
}

/// <summary>
/// Records kept in memory and each persisted atomically as &lt;dir&gt;/&lt;id&gt;/record.json, so a restarted
/// daemon finds every pod and container again. Writes go through <see cref="AtomicFile"/>.
/// </summary>
public sealed class RecordStore<T> where T : class, IRecord
{
    private const string FileName = "record.json";
    private readonly ConcurrentDictionary<string, T> _records = new();
    private readonly ConcurrentDictionary<string, object> _gates = new();
    private readonly JsonTypeInfo<T> _typeInfo;

    public RecordStore(string directory, JsonTypeInfo<T> typeInfo, ILogger logger)
    {
        Directory = directory;
        _typeInfo = typeInfo;
        StateDirectory.Create(directory);
        foreach (string recordDir in System.IO.Directory.EnumerateDirectories(directory))
        {
            string file = Path.Combine(recordDir, FileName);
            if (!File.Exists(file)) continue;
            try
            {
                var record = JsonSerializer.Deserialize(File.ReadAllBytes(file), typeInfo);
                if (record is not null) _records[record.Id] = record;
            }
            catch (JsonException e)
            {
                logger.LogError("ignoring unreadable state {File}: {Error}", file, e.Message);
            }
        }
    }

    public string Directory { get; }

    public string DirectoryOf(string id) => Path.Combine(Directory, id);

    public IEnumerable<T> All => _records.Values;

    public T? Get(string id) => _records.GetValueOrDefault(id);

    /// <summary>Finds by full id or by a unique prefix, as crictl lets users abbreviate ids.</summary>
    public T? Resolve(string idOrPrefix)
    {
        if (idOrPrefix.Length == 0) return null;
        if (_records.TryGetValue(idOrPrefix, out var exact)) return exact;
        var matches = _records.Values.Where(r => r.Id.StartsWith(idOrPrefix, StringComparison.Ordinal)).Take(2).ToList();
        return matches.Count == 1 ? matches[0] : null;
    }

    /// <summary>Adds a new record: persisted, then visible. An id already stored is a bug of the caller.</summary>
    public void Add(T record)
    {
        lock (GateOf(record.Id))
        {
            if (_records.ContainsKey(record.Id)) throw new InvalidOperationException($"record {record.Id} already exists");
            Persist(record);
            _records[record.Id] = record;
        }
    }

    /// <summary>
    /// The one way a stored record changes, as containerd's stores do it: mutations of one id are serialised,
    /// <paramref name="mutate"/> returns the new value (a copy: records are immutable), which is persisted
    /// atomically and only then published. When the write fails, the stored record stays as it was.
    /// A <paramref name="mutate"/> that returns its argument changes nothing and writes nothing.
    /// </summary>
    /// <returns>The record as stored after the update.</returns>
    /// <exception cref="NotFoundException">No record has the id (it was removed).</exception>
    public T Update(string id, Func<T, T> mutate)
    {
        lock (GateOf(id))
        {
            var current = _records.GetValueOrDefault(id) ?? throw new NotFoundException($"{typeof(T).Name} {id} not found");
            var next = mutate(current);
            if (ReferenceEquals(next, current)) return current;
            if (next.Id != id) throw new InvalidOperationException($"an update of {id} cannot change its id to {next.Id}");
            Persist(next);
            _records[id] = next;
            return next;
        }
    }

    private void Persist(T record) =>
        AtomicFile.Write(Path.Combine(DirectoryOf(record.Id), FileName), JsonSerializer.SerializeToUtf8Bytes(record, _typeInfo));

    // One monitor per id with a record (or one being added): updates of different ids write in parallel.
    private object GateOf(string id) => _gates.GetOrAdd(id, _ => new object());

    /// <summary>Forgets the record and deletes its directory; an update under way finishes first.</summary>
    public void Delete(string id)
    {
        lock (GateOf(id))
        {
            _records.TryRemove(id, out _);
            string dir = DirectoryOf(id);
            if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
            _gates.TryRemove(id, out _);
        }
    }
}

/// <summary>
/// One async lock per id: calls on the same object are serialised, on different objects run in parallel.
/// An id's lock exists only while someone holds or waits for it, so ids that come and go leave nothing behind.
/// </summary>
public sealed class KeyedLock
{
    private sealed class Entry
    {
        public readonly SemaphoreSlim Semaphore = new(1, 1);
        public int Users;
    }

    private readonly Dictionary<string, Entry> _locks = new();

    /// <summary>How many ids have a lock object now (held or awaited).</summary>
    internal int Count
    {
        get { lock (_locks) return _locks.Count; }
    }

    public async Task<IDisposable> AcquireAsync(string id, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_locks)
        {
            if (!_locks.TryGetValue(id, out entry!)) _locks[id] = entry = new Entry();
            entry.Users++;
        }
        try
        {
            await entry.Semaphore.WaitAsync(cancellationToken);
        }
        catch
        {
            Leave(id, entry);
            throw;
        }
        return new Release(this, id, entry);
    }

    private void Leave(string id, Entry entry)
    {
        lock (_locks)
        {
            if (--entry.Users == 0) _locks.Remove(id);
        }
    }

    private sealed class Release(KeyedLock owner, string id, Entry entry) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            entry.Semaphore.Release();
            owner.Leave(id, entry);
        }
    }
}
