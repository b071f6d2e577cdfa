using System.Text.Json;
using CriShim.Runtime.Config;
using CriShim.Runtime.Network;
using Runtime.V1;

namespace CriShim.Runtime.Daemon;

/// <summary>Answers Version, Status and RuntimeConfig from the configuration and the start-up probe.</summary>
public sealed class RuntimeStatusService(CriShimConfig config, ComponentProbe probe, PodCidrStore podCidr, IPodNetwork network)
{
    public const string RuntimeName = "crishim";
    public const string ApiVersion = "v1";

    public static string RuntimeVersion { get; } =
        typeof(RuntimeStatusService).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>()
            .FirstOrDefault()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public VersionResponse Version() => new()
    {
        Version = "0.1.0",
        RuntimeName = RuntimeName,
        RuntimeVersion = RuntimeVersion,
        RuntimeApiVersion = ApiVersion,
    };

    public async Task<StatusResponse> StatusAsync(bool verbose, CancellationToken cancellationToken)
    {
        // The probe runs once at start-up; a Status racing it waits briefly rather than report a guess.
        await probe.Completed.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        var response = new StatusResponse
        {
            Status = new RuntimeStatus { Conditions = { RuntimeReady(), network.Readiness(), CheckpointReady() } },
            // Strict is honoured when groups are resolved from the image (ContainerUserResolver).
            Features = new RuntimeFeatures { SupplementalGroupsPolicy = true },
        };
        static RuntimeHandlerFeatures FeaturesOf(HandlerProbe? handler) => new()
        {
            RecursiveReadOnlyMounts = handler?.RecursiveReadOnlyMounts == true,
            UserNamespaces = handler?.UserNamespaces == true,
        };
        // The unnamed entry is the default handler, as the kubelet reads it for pods without a RuntimeClass.
        response.RuntimeHandlers.Add(new RuntimeHandler
        {
            Name = "",
            Features = FeaturesOf(probe.Handlers.FirstOrDefault(h => h.Name == config.Runtime.DefaultHandler)),
        });
        foreach (var handler in probe.Handlers)
        {
            response.RuntimeHandlers.Add(new RuntimeHandler { Name = handler.Name, Features = FeaturesOf(handler) });
        }
        if (verbose)
        {
            response.Info.Add("config", ConfigJson.Serialize(config));
            response.Info.Add("criu", JsonSerializer.Serialize(probe.Criu ?? new Checkpoint.CriuStatus(false, "", 0, "not probed"), StatusJsonContext.Default.CriuStatus));
            response.Info.Add("runtimeHandlers", JsonSerializer.Serialize(probe.Handlers.ToList(), StatusJsonContext.Default.ListHandlerProbe));
            response.Info.Add("podCidr", JsonSerializer.Serialize(podCidr.PodCidr, StatusJsonContext.Default.String));
        }
        return response;
    }

    private RuntimeCondition RuntimeReady()
    {
        var defaultHandler = probe.Handlers.FirstOrDefault(h => h.Name == config.Runtime.DefaultHandler);
        if (defaultHandler is { Usable: true })
        {
            return new RuntimeCondition { Type = "RuntimeReady", Status = true };
        }
        return new RuntimeCondition
        {
            Type = "RuntimeReady",
            Status = false,
            Reason = "OCIRuntimeNotUsable",
            Message = $"default runtime handler \"{config.Runtime.DefaultHandler}\" cannot run: {defaultHandler?.Error ?? "not probed"}",
        };
    }

    /// <summary>Informational (the kubelet only requires RuntimeReady and NetworkReady): can CheckpointContainer work here.</summary>
    private RuntimeCondition CheckpointReady()
    {
        var criu = probe.Criu ?? new Checkpoint.CriuStatus(false, "", 0, "not probed");
        var condition = new RuntimeCondition { Type = CheckpointReadyCondition, Status = criu.Usable && criu.KnownProblem.Length == 0 };
        if (!criu.Usable)
        {
            condition.Reason = "CriuNotUsable";
            condition.Message = criu.Detail;
        }
        else if (criu.KnownProblem.Length > 0)
        {
            condition.Reason = "CriuKnownToFailOnThisKernel";
            condition.Message = criu.KnownProblem;
        }
        return condition;
    }

    public const string CheckpointReadyCondition = "CheckpointReady";

    public RuntimeConfigResponse RuntimeConfig() => new()
    {
        Linux = new LinuxRuntimeConfiguration
        {
            CgroupDriver = config.Runtime.CgroupDriver == "systemd" ? CgroupDriver.Systemd : CgroupDriver.Cgroupfs,
        },
    };
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(Checkpoint.CriuStatus))]
[System.Text.Json.Serialization.JsonSerializable(typeof(List<HandlerProbe>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class StatusJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
