using System.Diagnostics;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>
/// No unprivileged host user reaches the daemon's state (CVE-2021-41091: a set-uid file a container made in its
/// writable layer, run from the host). A plain pod and a user-namespaced pod run side by side, as the latter needs
/// the only directories others may search.
/// </summary>
[Collection(RegistryCollection.Name)]
public class StateIsolationTests(RegistryFixture registry)
{
    private const uint HostId = 200000;
    private const string Nobody = "65534";
    private const string Config = $"[runtime.handlers.crun]\npath = \"{CheckpointTests.CriuCapableCrun}\"\n";
    private const UnixFileMode GroupOrOtherReadWrite =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>Makes a set-uid root shell in the container's writable layer, as a hostile container would.</summary>
    private const string PlantSetUidShell = "mkdir /suid && cp /bin/busybox /suid/sh && chmod 4755 /suid/sh && exec sleep 3600";

    private static PodSandboxConfig UserNamespacedPod(string name)
    {
        var config = Cri.Pod(name);
        var mapping = new IDMapping { ContainerId = 0, HostId = HostId, Length = 65536 };
        config.Linux.SecurityContext = new LinuxSandboxSecurityContext
        {
            NamespaceOptions = new NamespaceOption { UsernsOptions = new UserNamespace { Mode = NamespaceMode.Pod, Uids = { mapping }, Gids = { mapping } } },
        };
        return config;
    }

    [Fact]
    public async Task NoHostUserReachesRootfsLayersBlobsShmOrRecordsAndNoStateDirectoryIsOpenToOthers()
    {
        var dirs = DaemonDirs.Create();
        // As /var/lib and /run are: others may search the base, or the daemon refuses user-namespaced pods.
        File.SetUnixFileMode(dirs.Base, (UnixFileMode)0b111_001_001);
        var daemon = await Daemon.StartAsync(dirs, Config);
        try
        {
            await daemon.PullAsync(Busybox);
            var plainPod = Cri.Pod("isolation-plain");
            string plainPodId = await daemon.RunPodAsync(plainPod);
            string plainId = await daemon.StartContainerAsync(plainPodId, plainPod, Cri.Container("plain", Busybox, "sh", "-c", PlantSetUidShell));
            var usernsPod = UserNamespacedPod("isolation-userns");
            string usernsPodId = await daemon.RunPodAsync(usernsPod, "crun");
            var usernsConfig = Cri.Container("userns", Busybox, "sh", "-c", PlantSetUidShell);
            usernsConfig.Linux.SecurityContext.NamespaceOptions = usernsPod.Linux.SecurityContext.NamespaceOptions;
            string usernsId = await daemon.StartContainerAsync(usernsPodId, usernsPod, usernsConfig);
            // Both containers work: their rootfs, /etc files and /dev/shm are reachable from inside.
            foreach (string id in new[] { plainId, usernsId })
            {
                await Cri.WaitUntilAsync(async () => File.Exists(Path.Combine(dirs.Root, "rootfs", id, "upper", "suid", "sh")), TimeSpan.FromSeconds(20), "the set-uid shell");
                Assert.Equal("ok", await daemon.ShAsync(id, "echo ok > /dev/shm/x && grep -q localhost /etc/hosts && cat /dev/shm/x"));
            }

            string[] forbidden =
            [
                .. new[] { plainId, usernsId }.SelectMany(id => new[]
                {
                    Path.Combine(dirs.Root, "rootfs", id, "merged"),
                    Path.Combine(dirs.Root, "rootfs", id, "upper"),
                    Path.Combine(dirs.Root, "containers", id),
                }),
                .. new[] { plainPodId, usernsPodId }.SelectMany(id => new[]
                {
                    Path.Combine(dirs.RunRoot, "pods", id, "shm"),
                    Path.Combine(dirs.Root, "pods", id),
                }),
                Path.Combine(dirs.Root, "images", "layers"),
                Path.Combine(dirs.Root, "images", "blobs", "sha256"),
                Path.Combine(dirs.Root, "pods"),
                Path.Combine(dirs.Root, "containers"),
                Path.Combine(dirs.Root, "rootfs"),
                dirs.Root,
                dirs.RunRoot,
            ];
            foreach (string path in forbidden)
            {
                var (exit, stderr) = RunAsNobody("ls", path);
                Assert.True(exit != 0 && stderr.Contains("Permission denied"), $"host user {Nobody} listed {path}: exit {exit} {stderr}\n{Chain(path)}");
            }
            foreach (string id in new[] { plainId, usernsId })
            {
                string shell = Path.Combine(dirs.Root, "rootfs", id, "upper", "suid", "sh");
                // Through env: setpriv itself still holds root's capabilities when it executes its program.
                var (exit, stderr) = RunAsNobody("env", shell, "-c", "id -u");
                Assert.True(exit != 0 && stderr.Contains("Permission denied"), $"host user {Nobody} ran {shell}: exit {exit} {stderr}\n{Chain(shell)}");
            }

            var traversable = new HashSet<string>(
                new[] { "", "rootfs", "pods", "containers" }.Select(d => Path.Combine(dirs.Root, d).TrimEnd('/'))
                    .Concat([dirs.RunRoot, Path.Combine(dirs.RunRoot, "pods")]));
            var violations = new List<string>();
            foreach (string root in new[] { dirs.Root, dirs.RunRoot }) Walk(root, othersCanEnter: true, traversable, violations);
            Assert.True(violations.Count == 0, "state directories open to others:\n" + string.Join('\n', violations));
            foreach (string blob in Directory.GetFiles(Path.Combine(dirs.Root, "images", "blobs", "sha256")))
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(blob));
            }
            foreach (string record in new[] { "pods", "containers" }.SelectMany(d => Directory.GetFiles(Path.Combine(dirs.Root, d), "record.json", SearchOption.AllDirectories)))
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(record));
            }
        }
        finally
        {
            await daemon.DisposeAsync();
            dirs.Delete();
        }
    }

    /// <summary>
    /// The rule, for every directory of state.root and state.run_root:
    /// - none is readable or writable by group or others (mode &amp; 066 = 0);
    /// - others may search (o+x) only the documented path a pod user namespace's root walks: the two roots,
    ///   rootfs/, pods/, containers/ and run_root/pods/ (0711), never a directory they could list;
    ///   a pod's or container's own directory on that path is searchable by the pod's root group only (0710);
    /// - container content is exempt and not descended into: a rootfs's merged/, upper/ and work/, a layer's diff/,
    ///   a pod's shm tmpfs, a container's volumes and image volumes, and the infra rootfs (0755, as the OCI runtime
    ///   opens it as a pod user namespace's root; it holds only empty mount points and a copy of the host's catatonit). Its modes are the image's or the
    ///   container's; what keeps host users out is that they cannot enter the directory that holds it, which the
    ///   rule above checks.
    /// </summary>
    private static void Walk(string directory, bool othersCanEnter, HashSet<string> traversable, List<string> violations)
    {
        var info = new DirectoryInfo(directory);
        var mode = info.UnixFileMode;
        bool enterable = othersCanEnter && mode.HasFlag(UnixFileMode.OtherExecute);
        if ((mode & GroupOrOtherReadWrite) != 0) violations.Add($"{directory}: {Octal(mode)} is readable or writable by group or others");
        if (enterable && !traversable.Contains(directory.TrimEnd('/'))) violations.Add($"{directory}: {Octal(mode)} lets others in");
        foreach (var child in info.EnumerateDirectories())
        {
            if (child.LinkTarget is not null || IsContent(child)) continue;
            Walk(child.FullName, enterable, traversable, violations);
        }
    }

    private static bool IsContent(DirectoryInfo directory) =>
        directory.Name is "merged" or "upper" or "work" or "diff" or "shm" or "infra-rootfs"
        || directory.Parent?.Name is "volumes" or "image-volumes";

    /// <summary>Owner and mode of the path and each directory above it, to show where it was let through.</summary>
    private static string Chain(string path) =>
        TestNetwork.Run("stat", ["-c", "%a %U:%G %n", .. Enumerable.Range(0, path.Count(c => c == '/')).Select(up => string.Concat(Enumerable.Repeat("/..", up)).Insert(0, path)).Select(Path.GetFullPath)]);

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');

    private static (int Exit, string Stderr) RunAsNobody(string program, params string[] args)
    {
        var info = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", program }.Concat(args)) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stderr);
    }
}
