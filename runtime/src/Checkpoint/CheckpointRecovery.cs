using System.Text.Json;
using CriShim.Runtime.Exec;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Store;

namespace CriShim.Runtime.Checkpoint;

/// <summary>
/// Undoes checkpoints that a daemon crash interrupted: stops their runtime and CRIU processes,
/// resumes the container, and removes the temp archive and the work dir.
/// </summary>
public sealed class CheckpointRecovery(StatePaths paths, RuntimeHandlers handlers, ILogger<CheckpointRecovery> logger)
{
    public async Task RecoverAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(paths.Checkpoints)) return;
        foreach (string workDir in Directory.EnumerateDirectories(paths.Checkpoints))
        {
            string marker = Path.Combine(workDir, CheckpointPipeline.InFlightFile);
            try
            {
                if (File.Exists(marker) &&
                    JsonSerializer.Deserialize(File.ReadAllBytes(marker), CheckpointJson.Default.CheckpointInFlight) is { } inFlight)
                {
                    await FinishOrphansAsync(workDir, inFlight.Deadline, cancellationToken);
                    if (handlers.TryGet(inFlight.RuntimeHandler, out var runtime))
                    {
                        await runtime.ResumeAsync(inFlight.ContainerId, cancellationToken);
                    }
                    File.Delete(inFlight.TempArchive);
                    logger.LogWarning("cleaned up the checkpoint of container {Id} that was interrupted by a daemon restart", inFlight.ContainerId);
                }
            }
            catch (Exception e) when (e is IOException or JsonException or Exec.ExternalCommandException)
            {
                logger.LogError("could not clean up interrupted checkpoint {Dir}: {Error}", workDir, e.Message);
            }
            Directory.Delete(workDir, recursive: true);
        }
    }

    /// <summary>
    /// The orphaned `runc checkpoint` (named by its work path) may still be dumping: CRIU is let finish,
    /// as killing it mid-dump can take the container's tasks down with it; only past the checkpoint's
    /// own deadline is it killed.
    /// </summary>
    private async Task FinishOrphansAsync(string workDir, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        while (RuntimesUsing(workDir) is { Count: > 0 } orphans)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                logger.LogWarning("killing checkpoint processes {Pids} left past their deadline", string.Join(", ", orphans));
                ProcessTree.Kill(orphans);
                return;
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    private static List<int> RuntimesUsing(string workDir) =>
        ProcessTree.ParentsByPid().Keys.Where(pid =>
        {
            try
            {
                return File.ReadAllText($"/proc/{pid}/cmdline").Contains(workDir, StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false;
            }
        }).ToList();
}
