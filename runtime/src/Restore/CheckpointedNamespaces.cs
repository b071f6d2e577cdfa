using System.Text.Json.Nodes;
using Runtime.V1;

namespace CriShim.Runtime.Restore;

/// <summary>
/// The network and pid namespaces a checkpoint's processes ran in (spec.dump's linux.namespaces: an entry when
/// the container had its own or the pod's, none when it shared the host's) against those the restore gives them.
/// CRIU brings processes back only into the kind of namespace they left: a dump from the pod's network needs one
/// to join (in a host-network pod it fails late with "Unable to find an external netns"), one from the host's
/// network cannot enter a pod's, and processes of the host's pid namespace keep host pids a private one lacks
/// (and the reverse). So a mismatch is refused before anything is created.
/// </summary>
public static class CheckpointedNamespaces
{
    /// <exception cref="WrongStateException">The checkpoint's network or pid mode differs from the restore's (FAILED_PRECONDITION).</exception>
    /// <exception cref="InvalidRequestException">spec.dump's linux.namespaces is malformed.</exception>
    public static void Require(JsonObject spec, PodSandboxConfig sandbox, ContainerConfig request, string archivePath)
    {
        var dumped = DumpedTypes(spec, archivePath);
        bool hostNetwork = sandbox.Linux?.SecurityContext?.NamespaceOptions?.Network == NamespaceMode.Node;
        RequireSame("network", dumpedOnHost: !dumped.Contains("network"), restoredOnHost: hostNetwork, "the pod sandbox it is restored into", archivePath);
        bool hostPid = request.Linux?.SecurityContext?.NamespaceOptions?.Pid == NamespaceMode.Node;
        RequireSame("pid", dumpedOnHost: !dumped.Contains("pid"), restoredOnHost: hostPid, "the container config", archivePath);
    }

    private static void RequireSame(string kind, bool dumpedOnHost, bool restoredOnHost, string target, string archivePath)
    {
        if (dumpedOnHost == restoredOnHost) return;
        throw new WrongStateException(
            $"checkpoint archive {archivePath} was dumped in {Mode(kind, dumpedOnHost)}, and {target} uses {Mode(kind, restoredOnHost)}: " +
            $"CRIU restores processes only into the kind of {kind} namespace they were dumped in");
    }

    private static string Mode(string kind, bool host) => host ? $"the host's {kind} namespace (NODE)" : $"a {kind} namespace of its pod or own";

    private static HashSet<string> DumpedTypes(JsonObject spec, string archivePath)
    {
        var types = new HashSet<string>(StringComparer.Ordinal);
        var namespaces = (spec["linux"] as JsonObject)?["namespaces"];
        if (namespaces is null) return types;
        if (namespaces is not JsonArray array) throw new InvalidRequestException($"checkpoint archive {archivePath}: spec.dump linux.namespaces is not an array");
        foreach (var entry in array)
        {
            if (entry is JsonObject namespaceEntry && namespaceEntry["type"] is JsonValue type && type.TryGetValue(out string? name)) types.Add(name);
            else throw new InvalidRequestException($"checkpoint archive {archivePath}: spec.dump linux.namespaces holds an entry without a type");
        }
        return types;
    }
}
