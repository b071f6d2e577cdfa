using System.Diagnostics;
using System.Text.Json;
using CriShim.NativeInterop;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Images;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// RestorePod (KEP-5823): a directory CheckpointPod wrote (pod.json and one archive per container) becomes a
/// new sandbox, from the request's config or else the checkpointed one, holding every checkpointed container
/// restored in CREATED state, each created from its archive with the request's config of the same name; the
/// caller starts them. On any error the sandbox, and with it every container made so far, is removed.
/// </summary>
public sealed class PodRestore(PodSandboxService sandboxes, ContainerRestore restore, IImageLookup images, ILogger<PodRestore> logger)
{
    /// <summary>pod.json is a few KiB (the pod's config and one line per container); it is read whole.</summary>
    public const long MaxManifestBytes = 1 << 20;

    /// <summary>A request checked against its checkpoint before anything is created.</summary>
    public sealed record Plan(PodSandboxConfig SandboxConfig, IReadOnlyList<(ContainerConfig Config, string Archive)> Containers);

    public async Task<RestorePodResponse> RestoreAsync(RestorePodRequest request, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var plan = Validate(request);
        RequireCheckpointedContainers(plan, images, cancellationToken);
        string podId = await sandboxes.RunAsync(plan.SandboxConfig, request.RuntimeHandler, cancellationToken);
        var response = new RestorePodResponse { PodSandboxId = podId };
        try
        {
            foreach (var (config, archive) in plan.Containers)
            {
                string id = await restore.CreateFromArchiveAsync(podId, config, archive, cancellationToken);
                response.RestoredContainers.Add(new RestoredContainer { Name = config.Metadata.Name, ContainerId = id });
            }
        }
        catch (Exception failure)
        {
            // The sandbox takes its containers with it; the caller gets the restore's error, not a clean-up's.
            try
            {
                await sandboxes.RemoveAsync(podId, CancellationToken.None);
            }
            catch (Exception cleanup)
            {
                logger.LogError("RestorePod: removing pod sandbox {Pod} after a failed restore ({Failure}) failed too: {Error}",
                    podId, failure.Message, cleanup.Message);
            }
            throw;
        }
        logger.LogInformation("restored pod {Pod} from {Path} with containers {Containers} in {Elapsed:0.000} s", podId, request.CheckpointPath,
            string.Join(", ", response.RestoredContainers.Select(c => $"{c.Name}={c.ContainerId}")), clock.Elapsed.TotalSeconds);
        return response;
    }

    /// <summary>
    /// The request and the checkpoint directory, checked: an absolute path to a directory holding a bounded,
    /// well-formed pod.json whose archives are plain files of that directory, no options (CriShim defines none),
    /// and exactly one container config for each checkpointed container, matched by metadata name, as the CRI
    /// requires (a container without one could not be started or managed by the caller).
    /// </summary>
    /// <exception cref="InvalidRequestException">The request or the checkpoint is malformed (INVALID_ARGUMENT).</exception>
    /// <exception cref="NotFoundException">The directory or an archive does not exist.</exception>
    public static Plan Validate(RestorePodRequest request)
    {
        if (request.Options.Count > 0)
        {
            throw new InvalidRequestException($"unknown option \"{request.Options.Keys.Order(StringComparer.Ordinal).First()}\": RestorePod accepts no options");
        }
        string directory = request.CheckpointPath;
        if (directory.Length == 0) throw new InvalidRequestException("checkpoint_path must name a directory written by CheckpointPod");
        if (!Path.IsPathRooted(directory) || directory.Contains('\0')) throw new InvalidRequestException($"checkpoint_path \"{directory}\" must be an absolute path");
        if (!Directory.Exists(directory)) throw new NotFoundException($"checkpoint_path \"{directory}\" is not an existing directory");
        var manifest = ReadManifest(directory);
        var sandboxConfig = request.Config ?? SandboxConfigOf(manifest, directory);

        var configs = new Dictionary<string, ContainerConfig>(StringComparer.Ordinal);
        foreach (var config in request.ContainerConfigs)
        {
            string name = config.Metadata?.Name ?? "";
            if (name.Length == 0) throw new InvalidRequestException("every container_configs entry needs metadata.name");
            if (!configs.TryAdd(name, config)) throw new InvalidRequestException($"container_configs names container \"{name}\" more than once");
        }
        var checkpointed = manifest.Containers.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var missing = checkpointed.Where(name => !configs.ContainsKey(name)).Order(StringComparer.Ordinal).ToList();
        var unknown = configs.Keys.Where(name => !checkpointed.Contains(name)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unknown.Count > 0)
        {
            throw new InvalidRequestException(
                $"container_configs must name exactly the checkpointed containers ({string.Join(", ", checkpointed.Order(StringComparer.Ordinal))})" +
                (missing.Count > 0 ? $"; missing: {string.Join(", ", missing)}" : "") + (unknown.Count > 0 ? $"; not in the checkpoint: {string.Join(", ", unknown)}" : ""));
        }
        return new Plan(sandboxConfig, [.. manifest.Containers.Select(c => (configs[c.Name], ArchivePath(directory, c)))]);
    }

    /// <summary>
    /// Each container config against its archive's config.dump and spec.dump (see <see cref="CheckpointedContainerMatch"/>
    /// and <see cref="CheckpointedNamespaces"/>), before anything is created.
    /// </summary>
    /// <exception cref="InvalidRequestException">A config names another image or command, or an archive's dumps are unreadable.</exception>
    /// <exception cref="WrongStateException">The sandbox's network mode or a config's pid mode is not the checkpoint's.</exception>
    public static void RequireCheckpointedContainers(Plan plan, IImageLookup images, CancellationToken cancellationToken)
    {
        foreach (var (config, archive) in plan.Containers)
        {
            var (dump, spec) = CheckpointArchiveIntake.ReadDumps(archive, cancellationToken);
            CheckpointedContainerMatch.Require(config, dump, spec, images, archive);
            CheckpointedNamespaces.Require(spec, plan.SandboxConfig, config, archive);
        }
    }

    private static PodCheckpointManifest ReadManifest(string directory)
    {
        string what = $"{PodCheckpoint.ManifestName} in {directory}";
        byte[] bytes = BoundedFile.ReadInRoot(directory, PodCheckpoint.ManifestName, MaxManifestBytes, what)
            ?? throw new InvalidRequestException($"{directory} is no pod checkpoint: it has no {PodCheckpoint.ManifestName}");
        PodCheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize(bytes, CheckpointJson.Default.PodCheckpointManifest);
        }
        catch (JsonException e)
        {
            throw new InvalidRequestException($"{what} is not valid: {e.Message}");
        }
        if (manifest?.Containers is not { Count: > 0 } containers) throw new InvalidRequestException($"{what} lists no containers");
        foreach (var container in containers)
        {
            if (container is null || string.IsNullOrEmpty(container.Name)) throw new InvalidRequestException($"{what} lists a container without a name");
        }
        if (containers.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new InvalidRequestException($"{what} lists container \"{twice.Key}\" more than once");
        }
        return manifest;
    }

    private static PodSandboxConfig SandboxConfigOf(PodCheckpointManifest manifest, string directory)
    {
        if (manifest.PodSandboxConfig.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException($"the request has no config and {PodCheckpoint.ManifestName} in {directory} holds no podSandboxConfig");
        }
        try
        {
            return JsonParser.Default.Parse<PodSandboxConfig>(manifest.PodSandboxConfig.GetRawText());
        }
        catch (IOException e) when (e is InvalidProtocolBufferException or InvalidJsonException)
        {
            throw new InvalidRequestException($"the podSandboxConfig of {PodCheckpoint.ManifestName} in {directory} is not valid: {e.Message}");
        }
    }

    /// <summary>The archive's path: a plain file directly in the checkpoint directory, never a link or a path out of it.</summary>
    private static string ArchivePath(string directory, PodCheckpointContainer container)
    {
        string name = container.Archive ?? "";
        if (name.Length == 0 || name is "." or ".." || name.IndexOfAny(['/', '\0']) >= 0)
        {
            throw new InvalidRequestException($"{PodCheckpoint.ManifestName} names archive \"{name}\" for container \"{container.Name}\": not a file name in the checkpoint directory");
        }
        string path = Path.Combine(directory, name);
        var status = LinkStatus.Of(path) ?? throw new NotFoundException($"archive {name} of container \"{container.Name}\" is missing from {directory}");
        if (!status.IsRegularFile) throw new InvalidRequestException($"archive {name} of container \"{container.Name}\" in {directory} is not a regular file");
        return path;
    }
}
