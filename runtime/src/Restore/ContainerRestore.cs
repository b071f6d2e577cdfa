using System.Diagnostics;
using System.Text.Json.Nodes;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// CreateContainer from a checkpoint archive, as CRI-O does it: the container is created (not started)
/// from the archive's spec adapted to the request and the new pod, on a writable layer holding the
/// checkpointed changes and with its log continued; StartContainer then runs `runc|crun restore` under
/// conmon (see <see cref="ContainerService.StartAsync"/>).
/// </summary>
public sealed class ContainerRestore(
    StatePaths paths,
    ContainerService containers,
    IImageLookup images,
    ImagePuller puller,
    ILogger<ContainerRestore> logger)
{
    /// <summary>Whether CreateContainer's image names a checkpoint archive on the host: as CRI-O, an absolute path (no image reference starts with "/").</summary>
    public static bool NamesArchive(string image) => image.StartsWith('/');

    /// <summary>
    /// Creates a container in pod <paramref name="podId"/> from the checkpoint archive at <paramref name="archivePath"/>;
    /// returns its id. The archive is checked whole before anything is created; on any failure nothing is left.
    /// </summary>
    /// <param name="restoredFrom">What the container's status names as its checkpoint when not the archive: the image that carried it.</param>
    public async Task<string> CreateFromArchiveAsync(string podId, ContainerConfig request, string archivePath, CancellationToken cancellationToken,
        string? restoredFrom = null)
    {
        var clock = Stopwatch.StartNew();
        // Before the archive is read: a wrong pod needs no extraction to be refused.
        var pod = containers.RequireReadyPod(podId);
        // Under the checkpoint work dirs: one a crash leaves behind is removed at the next start (it has no in-flight marker).
        string workDir = Path.Combine(paths.Checkpoints, $"restore-{Guid.NewGuid():N}");
        try
        {
            ExtractedCheckpoint checkpoint;
            using (PhaseLog.Time("restore extract archive", archivePath)) checkpoint = CheckpointArchiveIntake.Extract(archivePath, workDir, cancellationToken);
            CriuImageCompatibility.Check(checkpoint.ImagesDir, archivePath);
            var connections = CheckpointedConnections.Read(checkpoint.ImagesDir);
            CheckpointedNamespaces.Require(checkpoint.Spec, pod.ConfigMessage, request, archivePath);
            CheckpointedConnections.RequireAddresses(connections, pod.Ips, archivePath);
            var dumpOptions = checkpoint.DumpOptions ?? CheckpointedConnections.InferDumpOptions(connections);
            var (image, imageName) = await EnsureImageAsync(checkpoint, archivePath, cancellationToken);
            RequireBindMounts(checkpoint, request, image, archivePath);
            var config = RestoredConfig(request, checkpoint, imageName, archivePath);
            var createdSources = RecreateBindMountSources(checkpoint, config);
            string id;
            try
            {
                id = await containers.CreateAsync(podId, config, new RestoreSource(checkpoint, restoredFrom ?? archivePath, image, dumpOptions), cancellationToken);
            }
            catch
            {
                RemoveCreatedSources(createdSources);
                throw;
            }
            logger.LogInformation("created container {Id} from checkpoint archive {Archive} (container {Original}) in {Elapsed:0.000} s",
                id, archivePath, checkpoint.Config.Id, clock.Elapsed.TotalSeconds);
            return id;
        }
        finally
        {
            // Moved into the container's dir once it exists; otherwise nothing of it stays.
            if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
        }
    }

    /// <summary>The checkpointed container's image (by digest reference, else by name), pulled when this node lacks it.</summary>
    private async Task<(StoredImage Image, string Name)> EnsureImageAsync(ExtractedCheckpoint checkpoint, string archivePath, CancellationToken cancellationToken)
    {
        var dump = checkpoint.Config;
        string[] candidates = [.. new[] { dump.RootfsImageRef, dump.RootfsImageName, dump.RootfsImage }.Where(c => !string.IsNullOrEmpty(c))];
        if (candidates.Length == 0) throw new InvalidRequestException($"checkpoint archive {archivePath}: config.dump names no image");
        string name = !string.IsNullOrEmpty(dump.RootfsImageName) ? dump.RootfsImageName : candidates[0];
        foreach (string candidate in candidates)
        {
            if (images.Find(candidate) is { } found) return (found, name);
        }
        // An image id alone cannot be pulled; a digest reference pulls exactly the checkpointed image.
        string pullable = candidates.FirstOrDefault(c => !c.StartsWith("sha256:", StringComparison.Ordinal))
            ?? throw new NotFoundException($"image {candidates[0]} of checkpoint archive {archivePath} is not on this node and has no name to pull it by");
        logger.LogInformation("pulling {Image} for the restore of {Archive}", pullable, archivePath);
        return (await puller.PullAsync(pullable, RegistryCredentials.Anonymous, new Dictionary<string, string>(), cancellationToken), name);
    }

    /// <summary>CRIU recreates the dump's mounts: each bind mount must come from the request (its source may differ), else FAILED_PRECONDITION.</summary>
    internal static void RequireBindMounts(ExtractedCheckpoint checkpoint, ContainerConfig request, StoredImage image, string archivePath)
    {
        var provided = new HashSet<string>(request.Mounts.Select(m => Clean(m.ContainerPath)).Concat(image.Config.Volumes.Select(Clean)), StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var mount in checkpoint.Spec["mounts"] as JsonArray ?? [])
        {
            if (mount is not JsonObject m || Text(m["type"]) != "bind") continue;
            string destination = Clean(Text(m["destination"]) ?? "");
            if (destination.Length > 0 && !SpecDefaults.SystemMountDestinations.Contains(destination) && !provided.Contains(destination)) missing.Add(destination);
        }
        if (missing.Count > 0)
        {
            throw new WrongStateException(
                $"restoring checkpoint archive {archivePath} expects these bind mounts in the container config: {string.Join(", ", missing.Order(StringComparer.Ordinal))}");
        }
    }

    private static string Clean(string path) => path.Length > 1 ? path.TrimEnd('/') : path;

    private static string? Text(JsonNode? node) => node is JsonValue value && value.TryGetValue(out string? text) ? text : null;

    /// <summary>
    /// The request (name, labels, annotations, mounts, resources, security context) with what the
    /// restored processes already have from the dump: command, environment, working dir, terminal,
    /// and the masked and read-only paths CRIU finds mounted.
    /// </summary>
    private static ContainerConfig RestoredConfig(ContainerConfig request, ExtractedCheckpoint checkpoint, string imageName, string archivePath)
    {
        var process = checkpoint.Spec["process"] as JsonObject ?? throw new InvalidRequestException($"checkpoint archive {archivePath}: spec.dump has no process");
        var config = request.Clone();
        config.Image = new ImageSpec { Image = imageName };
        config.Command.Clear();
        config.Command.Add(Strings(process["args"], "process.args", archivePath));
        config.Args.Clear();
        config.WorkingDir = Text(process["cwd"]) ?? "/";
        config.Envs.Clear();
        foreach (string entry in Strings(process["env"], "process.env", archivePath))
        {
            int eq = entry.IndexOf('=');
            if (eq <= 0) continue;
            config.Envs.Add(new KeyValue { Key = entry[..eq], Value = ByteString.CopyFromUtf8(entry[(eq + 1)..]) });
        }
        config.Tty = process["terminal"] is JsonValue terminal && terminal.TryGetValue(out bool tty) && tty;
        var linux = checkpoint.Spec["linux"] as JsonObject;
        var masked = Strings(linux?["maskedPaths"], "linux.maskedPaths", archivePath);
        var readOnly = Strings(linux?["readonlyPaths"], "linux.readonlyPaths", archivePath);
        if (masked.Count > 0 || readOnly.Count > 0)
        {
            config.Linux ??= new LinuxContainerConfig();
            config.Linux.SecurityContext ??= new LinuxContainerSecurityContext();
            config.Linux.SecurityContext.MaskedPaths.Clear();
            config.Linux.SecurityContext.MaskedPaths.Add(masked);
            config.Linux.SecurityContext.ReadonlyPaths.Clear();
            config.Linux.SecurityContext.ReadonlyPaths.Add(readOnly);
        }
        return config;
    }

    internal static List<string> Strings(JsonNode? node, string what, string archivePath)
    {
        if (node is null) return [];
        if (node is not JsonArray array) throw new InvalidRequestException($"checkpoint archive {archivePath}: spec.dump {what} is not an array");
        return [.. array.Select(item => Text(item) ?? throw new InvalidRequestException($"checkpoint archive {archivePath}: spec.dump {what} holds a non-string"))];
    }

    /// <summary>
    /// A bind mount whose source is missing would be created as a directory, and CRIU cannot mount a
    /// directory where the dump had a file: the request's source is recreated as the kind the dump saved.
    /// The archive is untrusted and the path is the host's, so only that kind is taken from it, not its
    /// mode: directories (missing parents too) 0755 and files 0644, as the kubelet's hostPath
    /// DirectoryOrCreate and FileOrCreate make them.
    /// </summary>
    /// <returns>The paths created, parents first; when creating one fails, those before it are removed again.</returns>
    internal static List<string> RecreateBindMountSources(ExtractedCheckpoint checkpoint, ContainerConfig config)
    {
        var created = new List<string>();
        try
        {
            foreach (var dumped in checkpoint.BindMounts)
            {
                var mount = config.Mounts.FirstOrDefault(m => Clean(m.ContainerPath) == Clean(dumped.Destination ?? ""));
                // The spec builder refuses such a host path; it is not created here either.
                if (mount is null || !Path.IsPathRooted(mount.HostPath) || mount.HostPath.Split('/').Contains("..") || Path.Exists(mount.HostPath)) continue;
                CreateHostPath(mount.HostPath, isFile: dumped.FileType == "file", created);
            }
        }
        catch
        {
            RemoveCreatedSources(created);
            throw;
        }
        return created;
    }

    private const UnixFileMode HostDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private const UnixFileMode HostFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>Creates <paramref name="hostPath"/> and its missing parents, adding each to <paramref name="created"/> once it exists.</summary>
    private static void CreateHostPath(string hostPath, bool isFile, List<string> created)
    {
        var missing = new Stack<string>();
        for (string? path = hostPath; path is not null && !Path.Exists(path); path = Path.GetDirectoryName(path)) missing.Push(path);
        while (missing.TryPop(out string? path))
        {
            // Modes are set after creating: the umask narrows a create mode.
            if (isFile && missing.Count == 0)
            {
                using var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = HostFileMode });
                created.Add(path);
                File.SetUnixFileMode(file.SafeFileHandle, HostFileMode);
            }
            else
            {
                Directory.CreateDirectory(path, HostDirectoryMode);
                created.Add(path);
                File.SetUnixFileMode(path, HostDirectoryMode);
            }
        }
    }

    /// <summary>Removes what <see cref="RecreateBindMountSources"/> created, deepest first; a directory something else filled meanwhile stays.</summary>
    private static void RemoveCreatedSources(List<string> created)
    {
        for (int i = created.Count - 1; i >= 0; i--)
        {
            try
            {
                if (Directory.Exists(created[i])) Directory.Delete(created[i]);
                else File.Delete(created[i]);
            }
            catch (IOException)
            {
                // Not empty: no longer only what the restore made.
            }
        }
    }
}
