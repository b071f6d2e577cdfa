using System.Diagnostics;
using System.Text.Json;
using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>GetContainerEvents, as the kubelet's Evented PLEG uses it.</summary>
[Collection(RegistryCollection.Name)]
public class EventsTests(RegistryFixture registry)
{
    private static readonly TimeSpan EventWait = TimeSpan.FromSeconds(20);
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>One GetContainerEvents stream, recording every event it receives.</summary>
    private sealed class Subscriber : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cancel = new();
        private readonly AsyncServerStreamingCall<ContainerEventResponse> _call;
        private readonly List<ContainerEventResponse> _received = [];
        private readonly Task<StatusCode> _reading;

        private Subscriber(RuntimeService.RuntimeServiceClient client)
        {
            _call = client.GetContainerEvents(new GetEventsRequest(), cancellationToken: _cancel.Token);
            _reading = ReadAsync();
        }

        public static Task<Subscriber> StartAsync(Daemon daemon) => StartAsync(daemon.Runtime);

        /// <summary>Subscribed once the daemon sent the response headers.</summary>
        public static async Task<Subscriber> StartAsync(RuntimeService.RuntimeServiceClient client)
        {
            var subscriber = new Subscriber(client);
            await subscriber._call.ResponseHeadersAsync.WaitAsync(EventWait);
            return subscriber;
        }

        /// <summary>How the stream ended: OK when the daemon closed it.</summary>
        public Task<StatusCode> Ended => _reading;

        private async Task<StatusCode> ReadAsync()
        {
            try
            {
                await foreach (var containerEvent in _call.ResponseStream.ReadAllAsync())
                {
                    lock (_received) _received.Add(containerEvent);
                }
                return StatusCode.OK;
            }
            catch (RpcException e)
            {
                return e.StatusCode;
            }
        }

        public List<ContainerEventResponse> EventsOf(string id)
        {
            lock (_received) return _received.Where(e => e.ContainerId == id).ToList();
        }

        public async Task<ContainerEventResponse> WaitForAsync(string id, ContainerEventType type)
        {
            ContainerEventResponse? found = null;
            await Cri.WaitUntilAsync(() => Task.FromResult((found = EventsOf(id).FirstOrDefault(e => e.ContainerEventType == type)) is not null),
                EventWait, $"{type} of {id}");
            return found!;
        }

        public void Cancel() => _cancel.Cancel();

        public async ValueTask DisposeAsync()
        {
            _cancel.Cancel();
            await _reading;
            _call.Dispose();
        }
    }

    private static readonly ContainerEventType[] WholeLife =
    [
        ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent,
        ContainerEventType.ContainerStoppedEvent, ContainerEventType.ContainerDeletedEvent,
    ];

    [Fact]
    public async Task EverySubscriberSeesAContainerCreatedStartedStoppedOnItsOwnAndDeleted()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("events");
        string podId = await daemon.RunPodAsync(podConfig);
        await using var first = await Subscriber.StartAsync(daemon);
        await using var second = await Subscriber.StartAsync(daemon);
        var leaving = await Subscriber.StartAsync(daemon);
        leaving.Cancel();
        Assert.Equal(StatusCode.Cancelled, await leaving.Ended.WaitAsync(EventWait));

        var created = await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("quitter", Busybox, "sh", "-c", "sleep 1; exit 3"), SandboxConfig = podConfig,
        });
        string id = created.ContainerId;
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });
        // No RPC from here until the exit is reported: the daemon notices it by itself.
        var stopped = await first.WaitForAsync(id, ContainerEventType.ContainerStoppedEvent);
        var exited = Assert.Single(stopped.ContainersStatuses, s => s.Id == id);
        Assert.Equal(ContainerState.ContainerExited, exited.State);
        Assert.Equal(3, exited.ExitCode);
        Assert.Equal("Error", exited.Reason);
        Assert.True(stopped.CreatedAt >= exited.FinishedAt, "STOPPED was stamped before the exit it reports");
        Assert.Equal(podId, stopped.PodSandboxStatus.Id);
        Assert.Equal(PodSandboxState.SandboxReady, stopped.PodSandboxStatus.State);

        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id });
        foreach (var subscriber in new[] { first, second })
        {
            var deleted = await subscriber.WaitForAsync(id, ContainerEventType.ContainerDeletedEvent);
            var events = subscriber.EventsOf(id);
            Assert.Equal(WholeLife, events.Select(e => e.ContainerEventType));
            Assert.All(events, e => Assert.Equal(podId, e.PodSandboxStatus.Id));
            Assert.Equal(ContainerState.ContainerCreated, Assert.Single(events[0].ContainersStatuses, s => s.Id == id).State);
            Assert.Equal(ContainerState.ContainerRunning, Assert.Single(events[1].ContainersStatuses, s => s.Id == id).State);
            Assert.Equal(3, Assert.Single(events[2].ContainersStatuses, s => s.Id == id).ExitCode);
            Assert.DoesNotContain(deleted.ContainersStatuses, s => s.Id == id);
            Assert.True(events.Zip(events.Skip(1)).All(pair => pair.First.CreatedAt <= pair.Second.CreatedAt), "event times go backwards");
        }
        Assert.Empty(leaving.EventsOf(id));
        Assert.False(first.Ended.IsCompleted);
        await leaving.DisposeAsync();
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task APodReportsItsOwnLifeUnderItsIdAndAnInfraDeathOnce()
    {
        await using var daemon = await Daemon.StartAsync();
        await using var subscriber = await Subscriber.StartAsync(daemon);
        var podConfig = Cri.Pod("pod-events");
        string podId = await daemon.RunPodAsync(podConfig);
        await subscriber.WaitForAsync(podId, ContainerEventType.ContainerStartedEvent);
        var started = subscriber.EventsOf(podId);
        Assert.Equal([ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent], started.Select(e => e.ContainerEventType));
        Assert.Equal(PodSandboxState.SandboxReady, started[1].PodSandboxStatus.State);
        Assert.Equal(podConfig.Metadata.Uid, started[1].PodSandboxStatus.Metadata.Uid);

        // The infra process dies: the pod's STOPPED comes without any RPC, and StopPodSandbox does not repeat it.
        var verbose = await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId, Verbose = true });
        int infraPid = JsonDocument.Parse(verbose.Info["info"]).RootElement.GetProperty("pid").GetInt32();
        Process.Start("kill", ["-KILL", infraPid.ToString()])!.WaitForExit();
        var stopped = await subscriber.WaitForAsync(podId, ContainerEventType.ContainerStoppedEvent);
        Assert.Equal(PodSandboxState.SandboxNotready, stopped.PodSandboxStatus.State);

        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        var deleted = await subscriber.WaitForAsync(podId, ContainerEventType.ContainerDeletedEvent);
        // The kubelet drops its cache entry for a deleted pod only if the event names the pod.
        Assert.Equal(podConfig.Metadata.Uid, deleted.PodSandboxStatus.Metadata.Uid);
        Assert.Equal(WholeLife, subscriber.EventsOf(podId).Select(e => e.ContainerEventType));
    }

    [Fact]
    public async Task AnExitWhileTheDaemonWasDownReachesTheFirstSubscriberAfterTheRestart()
    {
        var dirs = DaemonDirs.Create();
        string podId, quitter;
        await using (var first = await Daemon.StartAsync(dirs))
        {
            await first.PullAsync(Busybox);
            var podConfig = Cri.Pod("events-restart");
            podId = await first.RunPodAsync(podConfig);
            quitter = await first.StartContainerAsync(podId, podConfig, Cri.Container("quitter", Busybox, "sh", "-c", "sleep 2; exit 7"));
            await first.KillAsync();
        }
        await Task.Delay(TimeSpan.FromSeconds(4));
        await using (var second = await Daemon.StartAsync(dirs))
        {
            await using var subscriber = await Subscriber.StartAsync(second);
            var stopped = await subscriber.WaitForAsync(quitter, ContainerEventType.ContainerStoppedEvent);
            Assert.Equal(7, Assert.Single(stopped.ContainersStatuses, s => s.Id == quitter).ExitCode);
            await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        dirs.Delete();
    }

    [Fact]
    public async Task AnOpenSubscriptionEndsCleanlyWhenTheDaemonStops()
    {
        var daemon = await Daemon.StartAsync();
        // A channel of its own: stopping the daemon closes the harness's channel first.
        using var channel = Daemon.Connect(daemon.SocketPath);
        await using var subscriber = await Subscriber.StartAsync(new RuntimeService.RuntimeServiceClient(channel));
        var watch = Stopwatch.StartNew();
        Assert.Equal(0, await daemon.StopAsync());
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the daemon took {watch.Elapsed} to stop");
        Assert.Equal(StatusCode.OK, await subscriber.Ended.WaitAsync(EventWait));
        await daemon.DisposeAsync();
    }
}
