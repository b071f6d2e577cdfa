using CriShim.Runtime.Events;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Events;

public class ContainerEventBusTests
{
    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static ContainerEventResponse Event(string id, ContainerEventType type = ContainerEventType.ContainerStartedEvent) =>
        new() { ContainerId = id, ContainerEventType = type };

    private static List<string> Drain(ContainerEventSubscription subscription)
    {
        var ids = new List<string>();
        while (subscription.Events.TryRead(out var containerEvent)) ids.Add(containerEvent.ContainerId);
        return ids;
    }

    [Fact]
    public void EverySubscriberGetsEveryEventInOrder()
    {
        var bus = new ContainerEventBus(TimeProvider.System);
        using var first = bus.Subscribe();
        using var second = bus.Subscribe();

        bus.Publish(Event("a", ContainerEventType.ContainerCreatedEvent));
        bus.Publish(Event("a", ContainerEventType.ContainerStartedEvent));
        bus.Publish(Event("b"));

        Assert.Equal(["a", "a", "b"], Drain(first));
        Assert.Equal(["a", "a", "b"], Drain(second));
    }

    [Fact]
    public async Task ASubscriberThatFallsBehindIsDroppedWithoutDisturbingTheOthers()
    {
        var bus = new ContainerEventBus(TimeProvider.System);
        using var slow = bus.Subscribe();
        using var fast = bus.Subscribe();

        for (int i = 0; i < ContainerEventBus.BufferSize; i++)
        {
            bus.Publish(Event($"c{i}"));
            Assert.True(fast.Events.TryRead(out _));
        }
        Assert.False(slow.Dropped.IsCancellationRequested);

        // Publishing must not wait for the full subscriber.
        await Task.Run(() => bus.Publish(Event("overflow"))).WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(slow.Dropped.IsCancellationRequested);
        Assert.Equal(1, bus.SubscriberCount);
        Assert.True(fast.Events.TryRead(out var next));
        Assert.Equal("overflow", next.ContainerId);
        bus.Publish(Event("after"));
        Assert.Equal(["after"], Drain(fast));
        // The dropped one keeps what it had buffered, then its channel is complete.
        Assert.Equal(ContainerEventBus.BufferSize, Drain(slow).Count);
        Assert.True(slow.Events.Completion.IsCompleted);
    }

    [Fact]
    public async Task DisposingUnsubscribesAndEndsTheStream()
    {
        var bus = new ContainerEventBus(TimeProvider.System);
        var leaving = bus.Subscribe();
        using var staying = bus.Subscribe();

        leaving.Dispose();
        bus.Publish(Event("x"));

        Assert.Equal(1, bus.SubscriberCount);
        Assert.Empty(Drain(leaving));
        await leaving.Events.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(leaving.Dropped.IsCancellationRequested);
        Assert.Equal(["x"], Drain(staying));
    }

    [Fact]
    public void EventsWithNoSubscriberAreKeptForTheNextOneUntilTheyExpire()
    {
        var time = new ManualTime();
        var bus = new ContainerEventBus(time);
        bus.Publish(Event("old"));
        time.Now += ContainerEventBus.BacklogRetention - TimeSpan.FromSeconds(1);
        bus.Publish(Event("recent"));
        time.Now += TimeSpan.FromSeconds(2);

        using var first = bus.Subscribe();
        Assert.Equal(["recent"], Drain(first));
        // Handed over once: a second subscriber does not get them again.
        using var second = bus.Subscribe();
        Assert.Empty(Drain(second));
    }

    [Fact]
    public void TheBacklogKeepsOnlyTheNewestBufferSizeEvents()
    {
        var bus = new ContainerEventBus(TimeProvider.System);
        for (int i = 0; i <= ContainerEventBus.BufferSize; i++) bus.Publish(Event($"c{i}"));

        using var subscription = bus.Subscribe();
        var ids = Drain(subscription);
        Assert.Equal(ContainerEventBus.BufferSize, ids.Count);
        Assert.Equal("c1", ids[0]);
        Assert.Equal($"c{ContainerEventBus.BufferSize}", ids[^1]);
    }

    [Fact]
    public async Task ClosingEndsEveryStreamNormallyAndLaterSubscriptionsAtOnce()
    {
        var bus = new ContainerEventBus(TimeProvider.System);
        using var open = bus.Subscribe();
        bus.Publish(Event("last"));

        bus.Close();
        bus.Publish(Event("ignored"));

        Assert.Equal(["last"], Drain(open));
        await open.Events.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(open.Dropped.IsCancellationRequested);
        using var late = bus.Subscribe();
        await late.Events.Completion.WaitAsync(TimeSpan.FromSeconds(5));
    }
}
