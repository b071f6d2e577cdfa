using System.Text.Json;
using CriShim.Runtime.Store;
using Runtime.V1;

namespace CriShim.Runtime.Containers;

/// <summary>
/// Finds containers for the read calls (status, list, stats, streaming, checkpoint). A read writes
/// nothing itself: an exit it notices is written by <see cref="ContainerExitRecorder"/>, the one place
/// that does.
/// </summary>
public sealed class ContainerLookup(StatePaths paths, RecordStore<ContainerRecord> containers, ContainerExitRecorder exits)
{
    /// <summary>Finds a container by id or unique prefix, with its exit noticed.</summary>
    public ContainerRecord Get(string id)
    {
        var record = containers.Resolve(id) ?? throw new NotFoundException($"container \"{id}\" not found");
        return exits.Refresh(record);
    }

    /// <summary>The pod's containers as stored, exits not looked for (for the lifecycle, which does that under each container's lock).</summary>
    public IEnumerable<ContainerRecord> OfPod(string podId) => containers.All.Where(c => c.PodId == podId);

    /// <summary>The pod's containers, each with its exit noticed.</summary>
    public IEnumerable<ContainerRecord> CurrentOfPod(string podId) => OfPod(podId).ToList().Select(exits.Refresh);

    /// <summary>
    /// The containers of each of <paramref name="podIds"/> (every one a key, with an empty list when it has none), each
    /// with its exit noticed: one pass over the stored containers for any number of pods, where
    /// <see cref="CurrentOfPod"/> for each pod would pass over every container once per pod.
    /// </summary>
    public Dictionary<string, List<ContainerRecord>> CurrentOfPods(IEnumerable<string> podIds)
    {
        var byPod = podIds.ToDictionary(id => id, _ => new List<ContainerRecord>());
        foreach (var stored in containers.All)
        {
            if (byPod.TryGetValue(stored.PodId, out var ofPod)) ofPod.Add(exits.Refresh(stored));
        }
        return byPod;
    }

    public IEnumerable<ContainerRecord> List(ContainerFilter? filter)
    {
        foreach (var stored in containers.All.ToList())
        {
            var record = exits.Refresh(stored);
            if (filter is not null)
            {
                if (filter.Id.Length > 0 && !record.Id.StartsWith(filter.Id, StringComparison.Ordinal)) continue;
                if (filter.State is not null && record.State != filter.State.State) continue;
                if (filter.PodSandboxId.Length > 0 && !record.PodId.StartsWith(filter.PodSandboxId, StringComparison.Ordinal)) continue;
                if (!LabelSelector.Matches(record.ConfigMessage.Labels, filter.LabelSelector)) continue;
            }
            yield return record;
        }
    }

    public Dictionary<string, string> VerboseInfo(ContainerRecord record)
    {
        string bundle = paths.ContainerBundle(record.Id);
        string specPath = Path.Combine(bundle, "config.json");
        string spec = File.Exists(specPath) ? File.ReadAllText(specPath) : "{}";
        var info = new VerboseContainerInfo(record.Id, record.PodId, record.Pid, record.RuntimeHandler, bundle,
            JsonDocument.Parse(spec).RootElement);
        return new Dictionary<string, string> { ["info"] = JsonSerializer.Serialize(info, ContainerInfoJson.Default.VerboseContainerInfo) };
    }
}

public sealed record VerboseContainerInfo(string Id, string SandboxId, int Pid, string RuntimeHandler, string Bundle, JsonElement RuntimeSpec);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(VerboseContainerInfo))]
internal sealed partial class ContainerInfoJson : System.Text.Json.Serialization.JsonSerializerContext;
