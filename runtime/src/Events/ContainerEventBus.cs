using System.Threading.Channels;
using Runtime.V1;

namespace CriShim.Runtime.Events;

/// <summary>
/// Fans container events out to every GetContainerEvents subscriber. Publishing never waits: each
/// subscriber has a buffer of <see cref="BufferSize"/> events, and one that falls that far behind is
/// dropped (its <see cref="ContainerEventSubscription.Dropped"/> fires) instead of slowing the runtime.
/// Events published while nobody listens are kept for <see cref="BacklogRetention"/>, as containerd
/// does, so a kubelet that (re)connects still learns of exits found at start-up or while it was away.
/// </summary>
public sealed class ContainerEventBus(TimeProvider time)
{
    /// <summary>Per-subscriber buffer, and the most events kept while nobody listens.</summary>
    public const int BufferSize = 1000;

    public static readonly TimeSpan BacklogRetention = TimeSpan.FromMinutes(5);

    private readonly Lock _gate = new();
    private readonly List<ContainerEventSubscription> _subscribers = [];
    private readonly Queue<(ContainerEventResponse Event, DateTimeOffset DiscardAt)> _backlog = new();
    private bool _closed;

    public int SubscriberCount
    {
        get { lock (_gate) return _subscribers.Count; }
    }

    /// <summary>A new subscription; the first one after a quiet spell also gets the kept events.</summary>
    public ContainerEventSubscription Subscribe()
    {
        var subscription = new ContainerEventSubscription(Unsubscribe);
        lock (_gate)
        {
            if (_closed)
            {
                subscription.Complete();
                return subscription;
            }
            DropExpiredBacklog();
            while (_backlog.TryDequeue(out var kept)) subscription.TryDeliver(kept.Event);
            _subscribers.Add(subscription);
        }
        return subscription;
    }

    public void Publish(ContainerEventResponse containerEvent)
    {
        List<ContainerEventSubscription>? laggards = null;
        lock (_gate)
        {
            if (_closed) return;
            if (_subscribers.Count == 0)
            {
                DropExpiredBacklog();
                if (_backlog.Count == BufferSize) _backlog.Dequeue();
                _backlog.Enqueue((containerEvent, time.GetUtcNow() + BacklogRetention));
                return;
            }
            for (int i = _subscribers.Count - 1; i >= 0; i--)
            {
                if (_subscribers[i].TryDeliver(containerEvent)) continue;
                (laggards ??= []).Add(_subscribers[i]);
                _subscribers.RemoveAt(i);
            }
        }
        // Outside the lock: dropping runs the stream's cancellation callbacks.
        foreach (var laggard in laggards ?? []) laggard.Drop();
    }

    /// <summary>At shutdown: every subscription's stream ends normally, so open streams do not hold the server up.</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            foreach (var subscriber in _subscribers) subscriber.Complete();
            _subscribers.Clear();
            _backlog.Clear();
        }
    }

    private void Unsubscribe(ContainerEventSubscription subscription)
    {
        lock (_gate) _subscribers.Remove(subscription);
    }

    private void DropExpiredBacklog()
    {
        var now = time.GetUtcNow();
        while (_backlog.TryPeek(out var oldest) && oldest.DiscardAt <= now) _backlog.Dequeue();
    }
}

/// <summary>One subscriber's events, in publication order; dispose to unsubscribe.</summary>
public sealed class ContainerEventSubscription : IDisposable
{
    private readonly Channel<ContainerEventResponse> _events = Channel.CreateBounded<ContainerEventResponse>(
        new BoundedChannelOptions(ContainerEventBus.BufferSize) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _dropped = new();
    private readonly Action<ContainerEventSubscription> _unsubscribe;

    internal ContainerEventSubscription(Action<ContainerEventSubscription> unsubscribe) => _unsubscribe = unsubscribe;

    public ChannelReader<ContainerEventResponse> Events => _events.Reader;

    /// <summary>Cancelled when the subscriber fell <see cref="ContainerEventBus.BufferSize"/> events behind and was dropped.</summary>
    public CancellationToken Dropped => _dropped.Token;

    internal bool TryDeliver(ContainerEventResponse containerEvent) => _events.Writer.TryWrite(containerEvent);

    internal void Drop()
    {
        // Cancelled before completed, so a reader that finds the channel complete can tell it was dropped.
        _dropped.Cancel();
        _events.Writer.TryComplete();
    }

    internal void Complete() => _events.Writer.TryComplete();

    // _dropped stays undisposed: a publisher may still be dropping this subscription, and it holds no timer.
    public void Dispose()
    {
        _unsubscribe(this);
        _events.Writer.TryComplete();
    }
}
