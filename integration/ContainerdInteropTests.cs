using System.Diagnostics;
using CriShim.TestImages;
using Xunit.Abstractions;

namespace CriShim.Integration;

/// <summary>
/// Runs with `make interop` (CRISHIM_INTEROP=1), which installs containerd 2.1 from Debian forky (scripts/containerd.sh):
/// asked for, it fails without containerd rather than skip.
/// </summary>
public sealed class InteropFactAttribute : FactAttribute
{
    public InteropFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CRISHIM_INTEROP") != "1") Skip = "containerd interop: run it with make interop";
    }
}

/// <summary>
/// Checkpoint archives across runtimes (issue 10, "Across runtimes"): a counter checkpointed by CriShim is restored by
/// containerd 2.1 (Debian forky's 2.1.9, with make deps' runc 1.3 and CRIU 4.2) and continues where it was, and one
/// checkpointed by containerd continues in CriShim; containerd's own archive restored by containerd is the yardstick. Both daemons run on private sockets, state and networks.
/// </summary>
[Trait("Category", "Interop")]
[Collection(RegistryCollection.Name)]
public class ContainerdInteropTests(RegistryFixture registry, ITestOutputHelper output)
{
    public const string ContainerdVersion = "2.1";

    /// <summary>Counts every 100 ms into /tmp/count as "&lt;run&gt; &lt;count&gt;": the run is random per start, held only in memory.</summary>
    private const string CounterScript = "run=$RANDOM$RANDOM; i=0; while true; do i=$((i+1)); echo \"$run $i\" > /tmp/count; sleep 0.1; done";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    [InteropFact]
    public async Task ACriShimCheckpointRestoresInContainerdAndContinues()
    {
        await using var crishim = await Daemon.StartAsync();
        await using var containerd = await Containerd.StartAsync(ContainerdVersion, registry.Registry);
        string archive = Path.Combine(Directory.CreateTempSubdirectory("crishim-interop-").FullName, "counter.tar");
        try
        {
            var source = new Side("CriShim", crishim.Runtime, crishim.Images);
            var checkpointed = await CheckpointCounterAsync(source, archive);

            var restored = await RestoreAsync(new Side("containerd", containerd.Runtime, containerd.Images), archive);
            output.WriteLine($"CriShim -> containerd {ContainerdVersion}: checkpointed at {checkpointed}, restored {restored.Describe()}");
            Assert.True(restored.Continued(checkpointed), $"the counter did not continue: checkpointed {checkpointed}, restored {restored.Describe()}");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(archive)!, recursive: true);
        }
    }

    [InteropFact]
    public async Task AContainerdCheckpointRestoresInContainerd()
    {
        await using var containerd = await Containerd.StartAsync(ContainerdVersion, registry.Registry);
        string archive = Path.Combine(Directory.CreateTempSubdirectory("crishim-interop-").FullName, "counter.tar");
        try
        {
            var side = new Side("containerd", containerd.Runtime, containerd.Images);
            var checkpointed = await CheckpointCounterAsync(side, archive);

            var restored = await RestoreAsync(side, archive);
            output.WriteLine($"containerd -> containerd {ContainerdVersion}: checkpointed at {checkpointed}, restored {restored.Describe()}");
            Assert.True(restored.Continued(checkpointed), $"the counter did not continue: checkpointed {checkpointed}, restored {restored.Describe()}");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(archive)!, recursive: true);
        }
    }

    [InteropFact]
    public async Task AContainerdCheckpointRestoresInCriShimAndContinues()
    {
        await using var containerd = await Containerd.StartAsync(ContainerdVersion, registry.Registry);
        await using var crishim = await Daemon.StartAsync();
        string archive = Path.Combine(Directory.CreateTempSubdirectory("crishim-interop-").FullName, "counter.tar");
        try
        {
            // The counter also removes a directory of its image: containerd's diff carries that as a whiteout.
            var source = new Side("containerd", containerd.Runtime, containerd.Images);
            var checkpointed = await CheckpointCounterAsync(source, archive, $"rm -r {ImageDirectoryTheCounterRemoves}; {CounterScript}");

            var target = new Side("CriShim", crishim.Runtime, crishim.Images);
            var restored = await RestoreAsync(target, archive);
            bool removedStaysRemoved = !await ExistsAsync(target, restored.ContainerId, ImageDirectoryTheCounterRemoves);
            output.WriteLine($"containerd {ContainerdVersion} -> CriShim: checkpointed at {checkpointed}, restored {restored.Describe()}; " +
                $"{ImageDirectoryTheCounterRemoves} (removed before the checkpoint) {(removedStaysRemoved ? "stays removed" : "is back")}");
            Assert.True(restored.Continued(checkpointed), $"the counter did not continue: checkpointed {checkpointed}, restored {restored.Describe()}");
            Assert.True(removedStaysRemoved, $"{ImageDirectoryTheCounterRemoves}, whited out in containerd's rootfs diff, is back after the restore");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(archive)!, recursive: true);
        }
    }

    /// <summary>A directory of the test busybox image (TestImages' BaseLayers).</summary>
    private const string ImageDirectoryTheCounterRemoves = "/var/www";

    private static async Task<bool> ExistsAsync(Side side, string id, string path)
    {
        var request = new ExecSyncRequest { ContainerId = id, Timeout = 30 };
        request.Cmd.Add(["test", "-e", path]);
        return (await side.Runtime.ExecSyncAsync(request)).ExitCode == 0;
    }

    /// <summary>One daemon's CRI.</summary>
    private sealed record Side(string Name, RuntimeService.RuntimeServiceClient Runtime, ImageService.ImageServiceClient Images);

    /// <summary>The counter's reading before the checkpoint and after the restore, with the restore's wall times.</summary>
    private sealed record Reading(string ContainerId, Count First, Count Later, TimeSpan Create, TimeSpan Start)
    {
        /// <summary>The same run (its memory came back), from at least where it was checkpointed, and still counting.</summary>
        public bool Continued(Count checkpointed) =>
            First.Run == checkpointed.Run && First.Value >= checkpointed.Value && Later.Value > First.Value;

        public string Describe() =>
            $"run {First.Run} at {First.Value}, then {Later.Value} (CreateContainer {Create.TotalMilliseconds:F0} ms, StartContainer {Start.TotalMilliseconds:F0} ms)";
    }

    private sealed record Count(string Run, long Value)
    {
        public override string ToString() => $"run {Run} at {Value}";
    }

    private async Task<Count> CheckpointCounterAsync(Side side, string archive, string script = CounterScript)
    {
        await side.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = Busybox } });
        var pod = Cri.Pod($"interop-{side.Name.ToLowerInvariant()}");
        string podId = (await side.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod })).PodSandboxId;
        string id = (await side.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("counter", Busybox, "sh", "-c", script), SandboxConfig = pod,
        })).ContainerId;
        await side.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });
        await Cri.WaitUntilAsync(async () => (await CountAsync(side, id))?.Value >= 20, TimeSpan.FromSeconds(60), $"the counter in {side.Name}");

        // What the archive holds was counted no earlier than this.
        var checkpointed = (await CountAsync(side, id))!;
        await side.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = archive, Timeout = 120 },
            deadline: DateTime.UtcNow.AddMinutes(3));
        await side.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await side.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        return checkpointed;
    }

    /// <summary>CreateContainer with image = the archive's path, in a new pod, then StartContainer: containerd's restore.</summary>
    private async Task<Reading> RestoreAsync(Side side, string archive)
    {
        var pod = Cri.Pod($"interop-restored-{side.Name.ToLowerInvariant()}");
        string podId = (await side.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod })).PodSandboxId;
        var config = Cri.Container("counter", archive);
        var clock = Stopwatch.StartNew();
        string id = (await side.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = config, SandboxConfig = pod })).ContainerId;
        var create = clock.Elapsed;
        clock.Restart();
        await side.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });
        var start = clock.Elapsed;
        var first = (await CountAsync(side, id))!;
        await Task.Delay(1000);
        var later = (await CountAsync(side, id))!;
        return new Reading(id, first, later, create, start);
    }

    /// <summary>The counter's run and value; a read that races the shell's truncate-and-write is retried.</summary>
    private static async Task<Count?> CountAsync(Side side, string id)
    {
        for (int attempt = 0; attempt < 10; attempt++)
        {
            var request = new ExecSyncRequest { ContainerId = id, Timeout = 30 };
            request.Cmd.Add(["cat", "/tmp/count"]);
            var result = await side.Runtime.ExecSyncAsync(request);
            string[] parts = result.Stdout.ToStringUtf8().Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (result.ExitCode == 0 && parts.Length == 2 && long.TryParse(parts[1], out long value)) return new Count(parts[0], value);
            await Task.Delay(50);
        }
        return null;
    }
}
