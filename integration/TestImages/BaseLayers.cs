using System.Text.RegularExpressions;

namespace CriShim.TestImages;

/// <summary>
/// The base layers of every test image: a busybox userland with one hard link per applet in /bin
/// (so masking /bin/ls does not mask /bin/busybox) and a minimal /etc, in two builds.
/// </summary>
public sealed partial class BaseLayers
{
    /// <summary>Debian's dynamic busybox, downloaded (not installed) by <c>make deps</c>.</summary>
    public const string BusyboxDeb = "/var/cache/crishim/debs/busybox.deb";

    /// <summary>Debian's busybox-static, installed by <c>make deps</c>.</summary>
    public const string StaticBusybox = "/bin/busybox";

    public const string LibraryDirectory = "/lib/x86_64-linux-gnu";


    public const string Passwd = """
        root:x:0:0:root:/root:/bin/sh
        daemon:x:1:1:daemon:/usr/sbin:/bin/false
        bin:x:2:2:bin:/bin:/bin/false
        sys:x:3:3:sys:/dev:/bin/false
        sync:x:4:100:sync:/bin:/bin/sync
        mail:x:8:8:mail:/var/spool/mail:/bin/false
        www-data:x:33:33:www-data:/var/www:/bin/false
        operator:x:37:37:Operator:/var:/bin/false
        nobody:x:65534:65534:nobody:/home:/bin/false

        """;

    public const string Group = """
        root:x:0:
        daemon:x:1:
        bin:x:2:
        sys:x:3:
        adm:x:4:
        tty:x:5:
        disk:x:6:
        wheel:x:10:root
        mail:x:8:
        www-data:x:33:
        operator:x:37:
        users:x:100:
        nogroup:x:65534:

        """;

    private static readonly Lazy<BaseLayers> Host = new(Build);

    private BaseLayers(byte[] busyboxTar, byte[] busyboxStaticTar)
    {
        BusyboxTar = busyboxTar;
        Busybox = LayerBuilder.Compress(busyboxTar, LayerCompression.Gzip);
        BusyboxStatic = LayerBuilder.Compress(busyboxStaticTar, LayerCompression.Gzip);
    }

    /// <summary>
    /// Dynamic busybox with the glibc files <c>ldd</c> names, copied from the host. It lacks
    /// FEATURE_SH_STANDALONE, so <c>sh -c ls</c> really execs /bin/ls. Also /bin/ipcs (util-linux)
    /// and a /bin/pgrep script, which this busybox lacks and critest runs.
    /// </summary>
    public Layer Busybox { get; }

    /// <summary>The uncompressed tar of <see cref="Busybox"/>, to compress it another way.</summary>
    public byte[] BusyboxTar { get; }

    /// <summary>busybox-static without any library: the smallest runnable image.</summary>
    public Layer BusyboxStatic { get; }

    /// <summary>Built once per process from the host's files.</summary>
    public static BaseLayers Load() => Host.Value;

    /// <summary>Builds the layers afresh (<see cref="Load"/> caches them).</summary>
    public static BaseLayers Build()
    {
        string unpacked = Directory.CreateTempSubdirectory("crishim-busybox-").FullName;
        try
        {
            HostCommand.Output("dpkg-deb", "-x", BusyboxDeb, unpacked);
            string busybox = Path.Combine(unpacked, "bin", "busybox");
            var dynamic = Userland(busybox);
            var libraries = SharedLibraries(busybox).Concat(SharedLibraries("/usr/bin/ipcs")).Distinct().Order(StringComparer.Ordinal);
            foreach (string library in libraries)
            {
                dynamic.File($"{LibraryDirectory}/{Path.GetFileName(library)}", File.ReadAllBytes(library), FileModes.Mode0755);
            }
            dynamic.Symlink("/lib64/ld-linux-x86-64.so.2", $"{LibraryDirectory}/ld-linux-x86-64.so.2")
                .File("/bin/ipcs", File.ReadAllBytes("/usr/bin/ipcs"), FileModes.Mode0755)
                .File("/bin/pgrep", PgrepScript, FileModes.Mode0755);
            return new BaseLayers(dynamic.ToTar(), Userland(StaticBusybox).ToTar());
        }
        finally
        {
            Directory.Delete(unpacked, recursive: true);
        }
    }

    private static LayerBuilder Userland(string busybox)
    {
        var layer = new LayerBuilder();
        foreach (string directory in (string[])["/dev", "/etc", "/home", "/proc", "/sys", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/local/bin", "/var/spool/mail", "/var/www"])
        {
            layer.Directory(directory);
        }
        layer.Directory("/root", FileModes.Mode0700)
            .Directory("/tmp", FileModes.Mode1777)
            .File("/etc/passwd", Passwd)
            .File("/etc/group", Group)
            .File("/etc/shadow", Shadow(Passwd), FileModes.Mode0640)
            .File("/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n")
            .File("/bin/busybox", File.ReadAllBytes(busybox), FileModes.Mode0755);
        // busybox --list runs on the host: both builds are x86-64 and the dynamic one finds the host's libc.
        foreach (string applet in HostCommand.Output(busybox, "--list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal))
        {
            if (applet != "busybox") layer.HardLink("/bin/" + applet, "/bin/busybox");
        }
        return layer;
    }

    /// <summary>A locked password for every user of <paramref name="passwd"/>.</summary>
    public static string Shadow(string passwd) =>
        string.Concat(passwd.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split(':')[0] + ":*:19000:0:99999:7:::\n"));

    /// <summary>The files <c>ldd</c> resolves for a binary, the dynamic loader included.</summary>
    private static IEnumerable<string> SharedLibraries(string binary) =>
        LddPath().Matches(HostCommand.Output("ldd", binary)).Select(match => match.Groups[1].Value);

    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    [GeneratedRegex(@"(?:=> |^\s*)(/\S+) \(0x", RegexOptions.Multiline)]
    private static partial Regex LddPath();

    /// <summary>busybox has no pgrep; critest's exec timeout spec runs <c>pgrep sleep</c>.</summary>
    private const string PgrepScript = """
        #!/bin/sh
        # pgrep stand-in: prints the pids whose command name matches the pattern; exit 1 if none.
        [ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
        found=1
        for dir in /proc/[0-9]*; do
            name=$(cat "$dir/comm" 2>/dev/null) || continue
            case "$name" in *$1*) echo "${dir#/proc/}"; found=0 ;; esac
        done
        exit $found

        """;
}
