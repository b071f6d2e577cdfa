using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Config;
using CriShim.Runtime.Oci;

namespace CriShim.Runtime.Daemon;

/// <summary>One handler's binary as found at start-up.</summary>
public sealed record HandlerProbe(string Name, string Path, bool Usable, string Version, string Error, bool CanCheckpoint,
    bool RecursiveReadOnlyMounts = false, bool UserNamespaces = false);

/// <summary>
/// Checks the external programs once at start-up (in the background, so the socket is up at once)
/// and keeps the answers for Status.
/// </summary>
public sealed class ComponentProbe(CheckpointConfig checkpoint, RuntimeHandlers handlers, ILogger<ComponentProbe> logger)
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<HandlerProbe> Handlers { get; private set; } = [];
    public CriuStatus? Criu { get; private set; }

    public Task Completed => _done.Task;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            var probes = new List<HandlerProbe>();
            foreach (var runtime in handlers.All)
            {
                try
                {
                    Store.StateDirectory.Create(runtime.Root);
                    var (version, canCheckpoint) = await runtime.VersionAsync(cancellationToken);
                    if (CgroupLayout.HandlerProblem(CgroupLayout.Root, version) is { } layoutProblem)
                    {
                        probes.Add(new HandlerProbe(runtime.Handler, runtime.BinaryPath, false, version, layoutProblem, false));
                        logger.LogWarning("runtime handler {Handler} is not usable: {Error}", runtime.Handler, layoutProblem);
                        continue;
                    }
                    var features = await runtime.FeaturesAsync();
                    probes.Add(new HandlerProbe(runtime.Handler, runtime.BinaryPath, true, version, "", canCheckpoint,
                        features.RecursiveReadOnlyMounts, features.UserNamespaces));
                    logger.LogInformation("runtime handler {Handler}: {Version} ({Path})", runtime.Handler, version, runtime.BinaryPath);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    probes.Add(new HandlerProbe(runtime.Handler, runtime.BinaryPath, false, "", e.Message, false));
                    logger.LogWarning("runtime handler {Handler} is not usable: {Error}", runtime.Handler, e.Message);
                }
            }
            Handlers = probes;
            Criu = checkpoint.Enabled
                ? await new Criu(checkpoint.Criu).ProbeAsync(cancellationToken)
                : new CriuStatus(false, "", 0, "checkpointing is disabled in the configuration (checkpoint.enabled = false)");
            if (Criu.Usable) logger.LogInformation("CRIU {Version}: {Detail}", Criu.Version, Criu.Detail);
            else logger.LogWarning("checkpointing unavailable: {Detail}", Criu.Detail);
            if (Criu.KnownProblem.Length > 0) logger.LogWarning("checkpoints will fail: {Problem}", Criu.KnownProblem);
        }
        finally
        {
            _done.TrySetResult();
        }
    }
}
