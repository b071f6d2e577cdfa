using CriShim.Runtime.Config;
using CriShim.Runtime.Images;
using CriShim.Runtime.Stats;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>
/// The list and stats calls a kubelet polls: every container's exit is looked for once per call (so a call costs in
/// proportion to the containers, however they are spread over pods), and one whose process ended reads EXITED.
/// </summary>
public sealed class ListingTests : IDisposable
{
    private readonly ServiceHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    /// <summary>Pods p0..p(n-1), each with two running containers, pN-a and pN-b; p1-a has exited since (conmon wrote its exit file).</summary>
    private async Task PodsAsync(int count)
    {
        for (int p = 0; p < count; p++)
        {
            _harness.ReadyPod($"p{p}");
            await _harness.RunningContainerAsync($"p{p}-a", $"p{p}");
            await _harness.RunningContainerAsync($"p{p}-b", $"p{p}");
        }
        _harness.Monitor.RecordExit("p1-a", 137);
    }

    private StatsService Stats()
    {
        string images = Path.Combine(_harness.Scratch, "images");
        var content = new ContentStore(images);
        var rootfs = new OverlayRootfsService(images, new ImageStore(images, content), new LayerStore(images, content.IngestDirectory),
            NullLogger<OverlayRootfsService>.Instance);
        // An empty cgroup tree: no figures, only the lists' shape matters here.
        var cgroups = new CgroupReader(Path.Combine(_harness.Scratch, "cgroup"), Path.Combine(_harness.Scratch, "proc"));
        return new StatsService(new RuntimeConfigSection(), _harness.Lookup, _harness.Pods, rootfs, cgroups, _harness.Clock,
            NullLogger<StatsService>.Instance);
    }

    [Fact]
    public async Task ListPodSandboxStatsLooksForEachContainersExitOnceAndGroupsThemByPod()
    {
        await PodsAsync(5);
        var stats = Stats();
        int before = _harness.Monitor.ExitLookups;

        var pods = await stats.ListPodSandboxesAsync(null);

        Assert.Equal(10, _harness.Monitor.ExitLookups - before);
        Assert.Equal(5, pods.Count);
        foreach (var pod in pods)
        {
            Assert.Equal([$"{pod.Attributes.Id}-a", $"{pod.Attributes.Id}-b"], pod.Linux.Containers.Select(c => c.Attributes.Id).Order());
        }
        // Its exit is recorded now: the next call has nothing to look for there.
        before = _harness.Monitor.ExitLookups;
        await stats.ListPodSandboxesAsync(null);
        Assert.Equal(9, _harness.Monitor.ExitLookups - before);
    }

    [Fact]
    public async Task TheContainersOfSomePodsAreLookedUpForThosePodsOnly()
    {
        await PodsAsync(4);
        int before = _harness.Monitor.ExitLookups;

        var byPod = _harness.Lookup.CurrentOfPods(["p1", "p3", "no-containers"]);

        Assert.Equal(4, _harness.Monitor.ExitLookups - before);
        Assert.Equal(["no-containers", "p1", "p3"], byPod.Keys.Order());
        Assert.Empty(byPod["no-containers"]);
        Assert.Equal(ContainerState.ContainerExited, byPod["p1"].Single(c => c.Id == "p1-a").State);
        Assert.Equal(ContainerState.ContainerRunning, byPod["p3"].Single(c => c.Id == "p3-b").State);
    }

    [Fact]
    public async Task ListContainersAndListContainerStatsShowAnExitedProcessAsExited()
    {
        await PodsAsync(3);
        int before = _harness.Monitor.ExitLookups;

        var listed = _harness.Lookup.List(null).ToList();

        Assert.Equal(6, _harness.Monitor.ExitLookups - before);
        Assert.Equal(ContainerState.ContainerExited, listed.Single(c => c.Id == "p1-a").State);
        Assert.Equal(5, listed.Count(c => c.State == ContainerState.ContainerRunning));
        Assert.Equal(6, Stats().ListContainers(null).Count);
    }
}
