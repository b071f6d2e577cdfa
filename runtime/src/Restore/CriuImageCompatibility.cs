using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace CriShim.Runtime.Restore;

/// <summary>
/// What CRIU checks first when it restores, checked before anything is created so the error is
/// FAILED_PRECONDITION with CRIU's own reason (and not a CRIU failure after the container was made):
/// inventory.img's image version must be one this node's CRIU reads, and the dumped tasks' machine
/// architecture (core-*.img) must be this node's. A file that cannot be read this way is left to CRIU,
/// and what CRIU itself finds only at StartContainer (the CPU features the images need, an image format it
/// does not read) is picked out of its restore.log by <see cref="IncompatibilityIn"/>.
/// </summary>
public static partial class CriuImageCompatibility
{
    private const uint InventoryMagic = 0x58313116;
    private const uint CommonMagic = 0x54564319;
    private const uint CoreMagic = 0x55053847;

    /// <summary>CRTOOLS_IMAGES_V1 and V1_1: every CRIU since 1.x writes 2 and reads both.</summary>
    private static readonly uint[] ReadableImageVersions = [1, 2];

    /// <summary>Bounds what is read of a core image's first entry (the machine type is its first field).</summary>
    private const int MaxEntryBytes = 1 << 20;

    /// <summary>CRIU's core_entry.march values (images/core.proto).</summary>
    private static readonly string[] Marches = ["unknown", "x86_64", "arm", "aarch64", "ppc64", "s390", "mips", "loongarch64", "riscv64"];

    public static void Check(string imagesDir, string archivePath)
    {
        if (FirstEntryField(Path.Combine(imagesDir, "inventory.img"), [InventoryMagic]) is { } version && !ReadableImageVersions.Contains(version))
        {
            throw new WrongStateException(
                $"checkpoint archive {archivePath} cannot be restored by this node's CRIU, which is too old for its images: Not supported images version {version}");
        }
        string? core = Directory.EnumerateFiles(imagesDir, "core-*.img").Order(StringComparer.Ordinal).FirstOrDefault();
        uint here = NodeMarch();
        if (core is not null && FirstEntryField(core, [CommonMagic, CoreMagic]) is { } march && march != here)
        {
            throw new WrongStateException(
                $"checkpoint archive {archivePath} was dumped on {Describe(march)} and this node is {Describe(here)}: CRIU cannot restore it (Core march mismatch {march}/{here})");
        }
    }

    /// <summary>
    /// CRIU's messages (CRIU 4.2's strings, after "Error (file:line): ") saying this node cannot restore the images
    /// at all: their version or format, their architecture, or CPU features the dumping CPU had and this one lacks
    /// (x86 "cpu: ..." checks of cpuinfo.img and the FPU/xsave state in core-*.img). A retry on this node fails
    /// alike, so it is the caller's precondition, not a CRIU failure.
    /// </summary>
    [GeneratedRegex(@"^(?:Not supported images version|Too old image, no longer supported|Unknown image format|Head magic doesn't match|Magic doesn't match|Core march mismatch|cpu: (?!.*Can't allocate)|x86: FPU xsave area present, but host cpu doesn't support it)")]
    private static partial Regex IncompatibleImage();

    /// <summary>
    /// A CRIU log line's error text: "(00.417275) Error (criu/cr-restore.c:2331): the text", or from a restored task
    /// "(01.399481)      6: Error (criu/net.c:2942): the text".
    /// </summary>
    [GeneratedRegex(@"^\(\s*[0-9.]+\)\s+(?:\d+:\s+)?Error \([^)]*\):\s*(?<text>.*)$")]
    private static partial Regex ErrorLine();

    /// <summary>
    /// CRIU's own line, from a failed restore's log, that says this node cannot restore the images (see
    /// <see cref="IncompatibleImage"/>); null when the failure is of another kind.
    /// </summary>
    public static string? IncompatibilityIn(IEnumerable<string> restoreLog) => CriuErrors(restoreLog).FirstOrDefault(text => IncompatibleImage().IsMatch(text));

    /// <summary>The text of each "Error" line of a CRIU log.</summary>
    public static IEnumerable<string> CriuErrors(IEnumerable<string> log)
    {
        foreach (string line in log)
        {
            if (ErrorLine().Match(line) is { Success: true } match) yield return match.Groups["text"].Value.Trim();
        }
    }

    private static string Describe(uint march) => march < Marches.Length ? Marches[march] : $"machine type {march}";

    private static uint NodeMarch() => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 1,
        Architecture.Arm => 2,
        Architecture.Arm64 => 3,
        Architecture.Ppc64le => 4,
        Architecture.S390x => 5,
        Architecture.LoongArch64 => 7,
        Architecture.RiscV64 => 8,
        _ => 0,
    };

    /// <summary>
    /// The first entry's field 1 (a varint) of a CRIU image: the magics, a little-endian u32 size, then the
    /// protobuf message. Null when the file is missing or not shaped so.
    /// </summary>
    private static uint? FirstEntryField(string path, uint[] magics)
    {
        if (!File.Exists(path)) return null;
        using var file = File.OpenRead(path);
        Span<byte> word = stackalloc byte[4];
        foreach (uint magic in magics)
        {
            if (file.ReadAtLeast(word, 4, throwOnEndOfStream: false) != 4 || BinaryPrimitives.ReadUInt32LittleEndian(word) != magic) return null;
        }
        if (file.ReadAtLeast(word, 4, throwOnEndOfStream: false) != 4) return null;
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(word);
        if (size is 0 or > MaxEntryBytes) return null;
        var entry = new byte[Math.Min(size, 16u)];
        if (file.ReadAtLeast(entry, entry.Length, throwOnEndOfStream: false) != entry.Length || entry[0] != 0x08) return null; // field 1, varint
        ulong value = 0;
        for (int i = 1, shift = 0; i < entry.Length && shift < 64; i++, shift += 7)
        {
            value |= (ulong)(entry[i] & 0x7f) << shift;
            if ((entry[i] & 0x80) == 0) return value <= uint.MaxValue ? (uint)value : null;
        }
        return null;
    }
}
