using System.Text.Json;
using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Runtime.V1;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// CheckpointPod (KEP-5823): one consistent cut of the selected running containers of a ready pod.
/// Every container is frozen before any is dumped and all stay frozen until the last is captured
/// (<see cref="CheckpointPipeline"/>); then each is thawed and its archive written as
/// &lt;output_path&gt;/&lt;container name&gt;.tar, the format CheckpointContainer writes, and pod.json last.
/// On any error, the files written into output_path are removed and every container runs.
/// </summary>
public sealed class PodCheckpoint(
    CheckpointConfig checkpoint,
    PodSandboxService sandboxes,
    ContainerLookup containers,
    CheckpointPipeline pipeline,
    ILogger<PodCheckpoint> logger)
{
    private const string Method = "CheckpointPod";
    public const string ManifestName = "pod.json";

    /// <param name="callDeadline">The gRPC deadline, which bounds the checkpoint (DateTime.MaxValue when the client set none:
    /// checkpoint.default_timeout_seconds then does).</param>
    /// <param name="cancellationToken">The call's token: cancelled at the gRPC deadline or when the client goes away.</param>
    public Task<List<CheckpointResult>> CheckpointAsync(CheckpointPodRequest request, DateTime callDeadline, CancellationToken cancellationToken) =>
        pipeline.RunAsync(Method, () =>
        {
            var plan = PodCheckpointPlan.From(request, CriuDumpOptions.From(checkpoint));
            var pod = sandboxes.Get(request.PodSandboxId);
            var targets = Targets(pod, [.. plan.ContainerIds.Select(containers.Get)], plan.OutputPath);
            string manifest = Path.Combine(plan.OutputPath, ManifestName);
            var limit = callDeadline == DateTime.MaxValue ? TimeSpan.FromSeconds(checkpoint.DefaultTimeoutSeconds) : callDeadline - DateTime.UtcNow;
            return new CheckpointJob($"pod {pod.Id}", targets, plan.DumpOptions, limit, callDeadline)
            {
                RequireReady = () =>
                {
                    if (PodSandboxStatusMapper.StateOf(pod) != PodSandboxState.SandboxReady)
                    {
                        throw new WrongStateException($"pod sandbox {pod.Id} is not ready: only a ready pod can be checkpointed");
                    }
                },
                Complete = (phase, results, token) =>
                {
                    phase.Enter($"writing {ManifestName}");
                    AtomicFile.Write(manifest, JsonSerializer.SerializeToUtf8Bytes(Manifest(pod, targets, results), CheckpointJson.Default.PodCheckpointManifest));
                    token.ThrowIfCancellationRequested();
                    var last = results[^1];
                    logger.LogInformation("checkpointed pod {Pod} (containers {Containers}) to {Output}: {Bytes} bytes in {Total:0.000} s, frozen {Frozen:0.000} s",
                        pod.Id, string.Join(", ", targets.Select(t => $"{t.Record.ConfigMessage.Metadata.Name}={t.Record.Id}")), plan.OutputPath,
                        results.Sum(r => r.Bytes), last.Total.TotalSeconds, last.Frozen.TotalSeconds);
                },
                // The caller's directory is left as it was given: empty.
                Undo = () =>
                {
                    foreach (var target in targets) File.Delete(target.Location);
                    File.Delete(manifest);
                },
            };
        }, cancellationToken);

    /// <summary>Each container's archive location; a container of another pod, or named twice, is refused.</summary>
    private static List<CheckpointTarget> Targets(PodSandboxRecord pod, List<ContainerRecord> records, string outputPath)
    {
        var targets = new List<CheckpointTarget>(records.Count);
        foreach (var record in records)
        {
            if (record.PodId != pod.Id)
            {
                throw new InvalidRequestException($"container {record.Id} belongs to pod sandbox {record.PodId}, not to {pod.Id}");
            }
            if (targets.FirstOrDefault(t => t.Record.Id == record.Id) is not null)
            {
                throw new InvalidRequestException($"container_ids names container {record.Id} more than once");
            }
            string location = Path.Combine(outputPath, PodCheckpointPlan.ArchiveName(record.ConfigMessage.Metadata.Name));
            if (targets.FirstOrDefault(t => t.Location == location) is { } sameName)
            {
                throw new InvalidRequestException($"containers {sameName.Record.Id} and {record.Id} share the name \"{record.ConfigMessage.Metadata.Name}\"");
            }
            targets.Add(new CheckpointTarget(record, location));
        }
        return targets;
    }

    private static PodCheckpointManifest Manifest(PodSandboxRecord pod, List<CheckpointTarget> targets, List<CheckpointResult> results)
    {
        var podConfig = pod.ConfigMessage;
        var metadata = podConfig.Metadata ?? new PodSandboxMetadata();
        using var configJson = JsonDocument.Parse(JsonFormatter.Default.Format(podConfig));
        var containerEntries = targets.Zip(results, (target, result) => new PodCheckpointContainer(
            target.Record.ConfigMessage.Metadata.Name, target.Record.Id, target.Record.ConfigMessage.Metadata.Attempt,
            Path.GetFileName(target.Location), result.Bytes)).ToList();
        return new PodCheckpointManifest(pod.Id, new PodCheckpointMetadata(metadata.Name, metadata.Namespace, metadata.Uid, metadata.Attempt),
            pod.RuntimeHandler, configJson.RootElement.Clone(), DateTimeOffset.UtcNow, containerEntries);
    }
}
