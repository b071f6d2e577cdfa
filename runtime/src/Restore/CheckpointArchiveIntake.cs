using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using CriShim.NativeInterop;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Images;
using CriShim.Runtime.Store;
using Microsoft.Win32.SafeHandles;

namespace CriShim.Runtime.Restore;

/// <summary>A checkpoint archive, validated and extracted into its private work dir.</summary>
public sealed record ExtractedCheckpoint(
    string WorkDir,
    CheckpointConfigDump Config,
    JsonObject Spec,
    IReadOnlyList<BindMountDump> BindMounts,
    IReadOnlyList<string> DeletedFiles)
{
    /// <summary>The CRIU images.</summary>
    public string ImagesDir => Path.Combine(WorkDir, CheckpointArchiveIntake.ImagesDirName);

    /// <summary>The writable layer's added and changed files (a tar, maybe gzip-compressed), when the container changed any.</summary>
    public string? RootfsDiff => ExistingFile(RootfsDiffTarName);

    /// <summary>The container's log up to the checkpoint: CriShim's and containerd's name, else CRI-O's.</summary>
    public string? Log => ExistingFile("container.log") ?? ExistingFile("io.kubernetes.cri-o.LogPath");

    private const string RootfsDiffTarName = Checkpoint.RootfsDiff.TarName;

    /// <summary>The CRIU options the dump used, when the archive says (CriShim's do); null for other runtimes' archives.</summary>
    public CriuDumpOptions? DumpOptions { get; init; }

    /// <summary>What the rootfs diff's OCI whiteouts remove from the image (containerd's diff has them).</summary>
    public RootfsDiffWhiteouts Whiteouts { get; init; } = RootfsDiffWhiteouts.None;

    private string? ExistingFile(string name) => File.Exists(Path.Combine(WorkDir, name)) ? Path.Combine(WorkDir, name) : null;
}

/// <summary>
/// Reads a checkpoint archive, which is untrusted input (it may come from another node or a registry).
/// A first pass reads only the tar headers and refuses, before anything is created, entries that leave
/// the archive (absolute or "..") and anything but directories and regular files (links, devices,
/// fifos), size claims beyond the file or the caps, and a rootfs-diff.tar holding device nodes or climbing
/// entries; a second pass, which finds every entry as the first did (type and size) or refuses the archive
/// as changed meanwhile, extracts the entries a restore uses into a fresh 0700 work dir, each file
/// created 0600 (owners and modes of the archive are not taken) in a directory opened RESOLVE_IN_ROOT.
/// </summary>
public static class CheckpointArchiveIntake
{
    public const string ImagesDirName = "checkpoint";
    public const string ConfigDumpName = "config.dump";
    public const string SpecDumpName = "spec.dump";
    public const string BindMountsName = "bind.mounts";

    /// <summary>Far above any real dump (a spec is a few KiB); the files are read whole into memory.</summary>
    public const long MaxJsonBytes = 4 << 20;

    /// <summary>Above any container a node restores (memory pages plus writable layer); claims beyond it are refused.</summary>
    public const long MaxArchiveBytes = 256L << 30;

    private static readonly string[] JsonNames =
        [ConfigDumpName, SpecDumpName, BindMountsName, RootfsDiff.DeletedName, CriuDumpOptions.FileName, "status.dump", "status"];

    /// <summary>The files of the archive a restore uses; others (dump.log, stats-dump, ...) are not extracted.</summary>
    private static readonly string[] ExtractedNames =
        [ConfigDumpName, SpecDumpName, BindMountsName, RootfsDiff.DeletedName, RootfsDiff.TarName, CriuDumpOptions.FileName, "container.log", "io.kubernetes.cri-o.LogPath"];

    /// <summary>
    /// Validates <paramref name="archivePath"/> and extracts it into <paramref name="workDir"/>, which must not
    /// exist. A missing archive is a <see cref="NotFoundException"/>; anything wrong with it an <see cref="InvalidRequestException"/>.
    /// </summary>
    public static ExtractedCheckpoint Extract(string archivePath, string workDir, CancellationToken cancellationToken) =>
        Extract(archivePath, workDir, cancellationToken, betweenPasses: null);

    /// <param name="betweenPasses">Runs after the headers are checked and before anything is extracted (for tests: the archive changing underneath).</param>
    internal static ExtractedCheckpoint Extract(string archivePath, string workDir, CancellationToken cancellationToken, Action? betweenPasses)
    {
        var archive = OpenArchive(archivePath);
        using var handle = archive.Handle;
        long archiveLength = archive.Length;
        using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 1 << 16);
        var entries = Scan(stream, archivePath, archiveLength, cancellationToken);
        RequireSpace(entries.Values.Sum(e => e.Length), Path.GetDirectoryName(workDir)!, archivePath);

        betweenPasses?.Invoke();
        StateDirectory.Create(workDir);
        // A fresh stream: the first one's buffer would replay the headers the first pass read, not what the file holds now.
        using var secondPass = new FileStream(handle, FileAccess.Read, bufferSize: 1 << 16);
        secondPass.Position = 0;
        ExtractEntries(secondPass, handle, entries, workDir, archivePath, cancellationToken);

        var checkpoint = new ExtractedCheckpoint(
            workDir,
            ReadJson(workDir, ConfigDumpName, CheckpointJson.Default.CheckpointConfigDump, archivePath)!,
            ReadSpec(workDir, archivePath),
            ReadJson(workDir, BindMountsName, CheckpointJson.Default.ListBindMountDump, archivePath) ?? [],
            (ReadJson(workDir, RootfsDiff.DeletedName, CheckpointJson.Default.ListString, archivePath) ?? []).Select(p => ContainerRelative(p, archivePath)).ToList())
        {
            DumpOptions = ReadJson(workDir, CriuDumpOptions.FileName, CheckpointJson.Default.CriuDumpOptions, archivePath),
        };
        StateDirectory.Create(checkpoint.ImagesDir);
        return checkpoint.RootfsDiff is { } diff ? checkpoint with { Whiteouts = ScanRootfsDiff(diff, archivePath, cancellationToken) } : checkpoint;
    }

    /// <summary>
    /// config.dump and spec.dump alone, read through the archive's headers without extracting anything: what
    /// RestorePod compares its request with before it creates anything. Bounded as <see cref="Extract"/> bounds them.
    /// </summary>
    public static (CheckpointConfigDump Config, JsonObject Spec) ReadDumps(string archivePath, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(OpenArchive(archivePath).Handle, FileAccess.Read, bufferSize: 1 << 16);
        byte[]? config = null, spec = null;
        ReadHeaders(stream, archivePath, cancellationToken, entry =>
        {
            string relative = Relative(entry.Name, archivePath);
            if (relative is not (ConfigDumpName or SpecDumpName) || !IsRegularFile(entry.EntryType)) return;
            if (entry.Length > MaxJsonBytes)
            {
                throw new InvalidRequestException($"checkpoint archive {archivePath}: {relative} claims {entry.Length} bytes, more than the {MaxJsonBytes} a dump may have");
            }
            var bytes = new byte[entry.Length];
            entry.DataStream?.ReadExactly(bytes);
            if (relative == ConfigDumpName) config = bytes;
            else spec = bytes;
        });
        if (config is null || spec is null) throw new InvalidRequestException($"{archivePath} is not a checkpoint archive: it needs {ConfigDumpName} and {SpecDumpName}");
        return (ParseJson(config, ConfigDumpName, CheckpointJson.Default.CheckpointConfigDump, archivePath), ParseSpec(spec, archivePath));
    }

    private static (SafeFileHandle Handle, long Length) OpenArchive(string archivePath)
    {
        if (Directory.Exists(archivePath)) throw new InvalidRequestException($"checkpoint archive {archivePath} is a directory, not an archive file");
        return BoundedFile.OpenRegularInRoot("/", archivePath, $"checkpoint archive {archivePath}")
            ?? throw new NotFoundException($"checkpoint archive {archivePath} not found");
    }

    private sealed record ScannedEntry(bool IsDirectory, long Length);

    /// <summary>The headers alone: every entry checked, nothing written.</summary>
    private static Dictionary<string, ScannedEntry> Scan(Stream stream, string archivePath, long archiveLength, CancellationToken cancellationToken)
    {
        var entries = new Dictionary<string, ScannedEntry>(StringComparer.Ordinal);
        long claimed = 0;
        ReadHeaders(stream, archivePath, cancellationToken, entry =>
        {
            string relative = Relative(entry.Name, archivePath);
            if (relative.Length == 0) return;
            bool isDirectory = entry.EntryType == TarEntryType.Directory;
            if (!isDirectory && !IsRegularFile(entry.EntryType))
            {
                throw new InvalidRequestException(
                    $"checkpoint archive {archivePath}: entry \"{entry.Name}\" is a {entry.EntryType}; a checkpoint holds only directories and regular files");
            }
            if (!isDirectory && JsonNames.Contains(relative) && entry.Length > MaxJsonBytes)
            {
                throw new InvalidRequestException($"checkpoint archive {archivePath}: {relative} claims {entry.Length} bytes, more than the {MaxJsonBytes} a dump may have");
            }
            claimed += entry.Length;
            if (claimed > archiveLength || claimed > MaxArchiveBytes)
            {
                throw new InvalidRequestException(
                    $"checkpoint archive {archivePath}: its entries claim {claimed} bytes, more than the {Math.Min(archiveLength, MaxArchiveBytes)} it can hold");
            }
            if (entries.TryGetValue(relative, out var seen) && !(seen.IsDirectory && isDirectory))
            {
                throw new InvalidRequestException($"checkpoint archive {archivePath}: \"{relative}\" appears twice");
            }
            for (string? parent = Path.GetDirectoryName(relative); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
            {
                if (entries.TryGetValue(parent, out var above) && !above.IsDirectory)
                {
                    throw new InvalidRequestException($"checkpoint archive {archivePath}: \"{relative}\" is inside \"{parent}\", which is a file");
                }
            }
            entries[relative] = new ScannedEntry(isDirectory, entry.Length);
        });
        bool hasImages = entries.Keys.Any(k => k == ImagesDirName || k.StartsWith(ImagesDirName + "/", StringComparison.Ordinal));
        if (!hasImages || entries.GetValueOrDefault(ConfigDumpName) is not { IsDirectory: false } || entries.GetValueOrDefault(SpecDumpName) is not { IsDirectory: false })
        {
            throw new InvalidRequestException($"{archivePath} is not a checkpoint archive: it needs {ConfigDumpName}, {SpecDumpName} and a {ImagesDirName}/ directory");
        }
        return entries;
    }

    private static bool IsRegularFile(TarEntryType type) => type is TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile;

    /// <summary>Calls <paramref name="visit"/> for every entry; a stream that is no tar is the caller's error.</summary>
    private static void ReadHeaders(Stream stream, string what, CancellationToken cancellationToken, Action<TarEntry> visit)
    {
        using var reader = new TarReader(stream, leaveOpen: true);
        try
        {
            while (reader.GetNextEntry(copyData: false) is { } entry)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (entry.EntryType is TarEntryType.GlobalExtendedAttributes) continue;
                visit(entry);
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or ArgumentOutOfRangeException)
        {
            throw new InvalidRequestException($"{what} is not a readable tar archive: {e.Message}");
        }
    }

    private static string Relative(string name, string archivePath)
    {
        try
        {
            return LayerUnpacker.Normalize(name);
        }
        catch (UnsafeLayerException e)
        {
            throw new InvalidRequestException($"checkpoint archive {archivePath}: {e.Message}");
        }
    }

    /// <summary>A path of the container's filesystem (deleted.files holds absolute ones), relative to its root.</summary>
    private static string ContainerRelative(string path, string archivePath)
    {
        string relative = Relative(path.TrimStart('/'), archivePath);
        return relative.Length > 0 ? relative : throw new InvalidRequestException($"checkpoint archive {archivePath}: {RootfsDiff.DeletedName} names the root directory");
    }

    private static void RequireSpace(long bytes, string directory, string archivePath)
    {
        StateDirectory.Create(directory);
        ulong available = FileSystems.StatFs(directory).AvailableBytes;
        if ((ulong)bytes > available)
        {
            throw new InsufficientSpaceException(
                $"not enough free space to restore {archivePath}: it holds {bytes >> 20} MiB, {directory} has {available >> 20} MiB free");
        }
    }

    /// <param name="archive">The archive <paramref name="stream"/> reads: the data of each entry is copied from it inside the kernel.</param>
    /// <param name="scanned">What <see cref="Scan"/> found: the file may have changed since, so each entry must match it again.</param>
    private static void ExtractEntries(Stream stream, SafeFileHandle archive, Dictionary<string, ScannedEntry> scanned, string workDir,
        string archivePath, CancellationToken cancellationToken)
    {
        var filesToSee = scanned.Where(e => !e.Value.IsDirectory).Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
        using var reader = new TarReader(stream, leaveOpen: true);
        while (reader.GetNextEntry(copyData: false) is { } entry)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (entry.EntryType is TarEntryType.GlobalExtendedAttributes) continue;
            string relative = Relative(entry.Name, archivePath);
            if (relative.Length == 0) continue;
            bool asScanned = entry.EntryType == TarEntryType.Directory
                ? scanned.GetValueOrDefault(relative) is { IsDirectory: true }
                : IsRegularFile(entry.EntryType) && filesToSee.Remove(relative) && scanned[relative].Length == entry.Length;
            if (!asScanned)
            {
                throw new InvalidRequestException($"checkpoint archive {archivePath} changed while it was read: entry \"{entry.Name}\" is not what its headers first said");
            }
            bool inImages = relative.StartsWith(ImagesDirName + "/", StringComparison.Ordinal);
            if (!inImages && !ExtractedNames.Contains(relative)) continue;
            // The work dir holds only what this loop made (directories and files, no links), and the
            // parent is resolved inside it all the same.
            string parentRelative = Path.GetDirectoryName(relative) ?? "";
            if (parentRelative.Length > 0) StateDirectory.Create(Path.Combine(workDir, parentRelative));
            if (entry.EntryType == TarEntryType.Directory)
            {
                StateDirectory.Create(Path.Combine(workDir, relative));
                continue;
            }
            using var parent = RootedPaths.OpenDirectoryInRoot(workDir, parentRelative.Length > 0 ? parentRelative : ".");
            string path = Path.Combine(RootedPaths.PathOf(parent), Path.GetFileName(relative));
            using var file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            // The CRIU images are most of the archive: copied once, in the kernel, not through a buffer.
            if (FileRanges.Copy(archive, entry.DataOffset, file.SafeFileHandle, 0, entry.Length) != entry.Length)
            {
                throw new InvalidRequestException($"checkpoint archive {archivePath}: it ends inside entry \"{entry.Name}\"");
            }
        }
    }

    private static T? ReadJson<T>(string workDir, string name, JsonTypeInfo<T> type, string archivePath)
    {
        return BoundedFile.ReadInRoot(workDir, name, MaxJsonBytes, $"checkpoint archive {archivePath}: {name}") is { } bytes
            ? ParseJson(bytes, name, type, archivePath)
            : default;
    }

    private static T ParseJson<T>(byte[] bytes, string name, JsonTypeInfo<T> type, string archivePath)
    {
        try
        {
            return JsonSerializer.Deserialize(bytes, type)
                ?? throw new InvalidRequestException($"checkpoint archive {archivePath}: {name} is null");
        }
        catch (JsonException e)
        {
            throw new InvalidRequestException($"checkpoint archive {archivePath}: {name} is not valid JSON: {e.Message}");
        }
    }

    private static JsonObject ReadSpec(string workDir, string archivePath) =>
        ParseSpec(BoundedFile.ReadInRoot(workDir, SpecDumpName, MaxJsonBytes, $"checkpoint archive {archivePath}: {SpecDumpName}")
            ?? throw new InvalidRequestException($"{archivePath} is not a checkpoint archive: it needs {SpecDumpName}"), archivePath);

    private static JsonObject ParseSpec(byte[] bytes, string archivePath)
    {
        try
        {
            return JsonNode.Parse(bytes) as JsonObject
                ?? throw new InvalidRequestException($"checkpoint archive {archivePath}: {SpecDumpName} is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidRequestException($"checkpoint archive {archivePath}: {SpecDumpName} is not valid JSON: {e.Message}");
        }
    }

    /// <summary>Whether a tar starts with gzip's magic bytes (containerd compresses its rootfs diff).</summary>
    public static bool IsGzip(string path)
    {
        Span<byte> magic = stackalloc byte[2];
        using var file = File.OpenRead(path);
        return file.Read(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    }

    /// <summary>The rootfs diff, decompressed if need be.</summary>
    public static Stream OpenRootfsDiff(string path)
    {
        var file = File.OpenRead(path);
        return IsGzip(path) ? new GZipStream(file, CompressionMode.Decompress) : file;
    }

    /// <summary>
    /// The rootfs diff is unpacked into the new container's writable layer: its entries must stay inside
    /// it, be no device node or fifo, and claim no more than the caps (a small gzip may claim terabytes).
    /// Returns its whiteouts.
    /// </summary>
    private static RootfsDiffWhiteouts ScanRootfsDiff(string path, string archivePath, CancellationToken cancellationToken)
    {
        string what = $"{RootfsDiff.TarName} of checkpoint archive {archivePath}";
        // Checked as each header is read, before its data is decompressed to be skipped.
        long limit = (long)Math.Min((ulong)MaxArchiveBytes, FileSystems.StatFs(Path.GetDirectoryName(path)!).AvailableBytes);
        long claimed = 0;
        var whiteouts = new RootfsDiffWhiteouts.Collector(what);
        using var stream = OpenRootfsDiff(path);
        ReadHeaders(stream, what, cancellationToken, entry =>
        {
            whiteouts.Add(Relative(entry.Name, archivePath));
            if (entry.EntryType is TarEntryType.CharacterDevice or TarEntryType.BlockDevice or TarEntryType.Fifo)
            {
                throw new InvalidRequestException($"{what}: entry \"{entry.Name}\" is a {entry.EntryType}, which a restore does not create");
            }
            claimed += entry.Length;
            if (claimed > limit) throw new InvalidRequestException($"{what}: its entries claim more than the {limit >> 20} MiB a restore can unpack here");
        });
        return whiteouts.ToWhiteouts();
    }
}
