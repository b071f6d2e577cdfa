using System.Text.Json.Nodes;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Images;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// A container config of RestorePod against what its archive checkpointed. A restore continues the checkpointed
/// processes on the checkpointed image whatever the config says, so a config naming another image or command is
/// the caller's mistake (a pod spec changed since the checkpoint, configs mixed up): INVALID_ARGUMENT naming the
/// container and the field, rather than a container that silently runs something other than its config.
/// </summary>
public static class CheckpointedContainerMatch
{
    /// <exception cref="InvalidRequestException">The config's image or command is not the checkpointed one.</exception>
    public static void Require(ContainerConfig config, CheckpointConfigDump dump, JsonObject spec, IImageLookup images, string archivePath)
    {
        string name = config.Metadata.Name;
        string requested = config.Image?.Image ?? "";
        if (!SameImage(requested, dump, images))
        {
            string checkpointed = string.Join(" ", new[] { dump.RootfsImageName, dump.RootfsImageRef }.Where(n => !string.IsNullOrEmpty(n)).Distinct());
            throw new InvalidRequestException(
                $"container_configs \"{name}\": image \"{requested}\" is not the image checkpointed in {archivePath} ({checkpointed}); a restore runs the checkpointed image");
        }
        var process = ContainerRestore.Strings((spec["process"] as JsonObject)?["args"], "process.args", archivePath);
        if (Mismatch(config, process) is { } field)
        {
            throw new InvalidRequestException(
                $"container_configs \"{name}\": {field} [{Quoted(field == "command" ? config.Command : config.Args)}] does not match the process checkpointed " +
                $"in {archivePath} ([{Quoted(process)}]); a restore continues the checkpointed process");
        }
    }

    /// <summary>
    /// Whether <paramref name="requested"/> names the checkpointed image. An image is its content: a digest reference
    /// names it in any repository, and a tag that this node resolves to it is the same image; a reference equal to the
    /// checkpointed name (normalized: busybox is docker.io/library/busybox:latest) is too, even if the tag has moved
    /// since, because the restore runs the checkpointed content (pulled by its digest) and the caller asked for the
    /// image it checkpointed. An empty reference asks for nothing.
    /// </summary>
    public static bool SameImage(string requested, CheckpointConfigDump dump, IImageLookup images)
    {
        string[] checkpointed = [.. new[] { dump.RootfsImage, dump.RootfsImageRef, dump.RootfsImageName }.Where(n => !string.IsNullOrEmpty(n))];
        if (requested.Length == 0 || checkpointed.Contains(requested, StringComparer.Ordinal)) return true;
        var parsedCheckpointed = checkpointed.Select(Parse).OfType<ImageReference>().ToList();
        if (Parse(requested) is { } reference)
        {
            if (reference.Digest is { } digest ? parsedCheckpointed.Any(c => c.Digest == digest)
                : parsedCheckpointed.Any(c => c.Digest is null && c.Name == reference.Name && c.Tag == reference.Tag))
            {
                return true;
            }
        }
        return images.Find(requested) is { } local && (checkpointed.Contains(local.Id) || local.RepoDigests.Intersect(checkpointed).Any());
    }

    private static ImageReference? Parse(string reference) => ImageReference.TryParse(reference, out var parsed, out _) ? parsed : null;

    /// <summary>
    /// The config's field that contradicts the checkpointed argv, or null. A command replaces the image's entrypoint,
    /// so command + args is the whole argv; args alone follow the image's entrypoint, so they end the argv; neither
    /// means the image's defaults, which the image check covers.
    /// </summary>
    private static string? Mismatch(ContainerConfig config, IReadOnlyList<string> process)
    {
        if (config.Command.Count > 0)
        {
            if (!process.Take(config.Command.Count).SequenceEqual(config.Command)) return "command";
            return process.Skip(config.Command.Count).SequenceEqual(config.Args) ? null : "args";
        }
        return config.Args.Count == 0 || process.Skip(process.Count - config.Args.Count).SequenceEqual(config.Args) ? null : "args";
    }

    private static string Quoted(IEnumerable<string> args) => string.Join(", ", args.Select(a => $"\"{a}\""));
}
