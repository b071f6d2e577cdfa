using System.Collections.Concurrent;

namespace CriShim.Runtime.Images;

/// <summary>
/// Runs one piece of work per key at a time: callers that ask while it runs wait for the same task
/// instead of starting their own, so two pulls of one layer download it once. The work runs under
/// its own token (<see cref="RunAsync"/>'s caller supplies it), so a waiter that gives up does not
/// cancel it for the others.
/// </summary>
public sealed class SingleFlight
{
    private readonly ConcurrentDictionary<string, Lazy<Task>> _running = new();

    public Task RunAsync(string key, Func<Task> work, CancellationToken waiterToken)
    {
        Lazy<Task>? mine = null;
        mine = new Lazy<Task>(() => RunThenForgetAsync(key, mine!, work));
        return _running.GetOrAdd(key, mine).Value.WaitAsync(waiterToken);
    }

    private async Task RunThenForgetAsync(string key, Lazy<Task> entry, Func<Task> work)
    {
        try
        {
            await Task.Yield();
            await work();
        }
        finally
        {
            // A failed attempt is forgotten too, so the next caller tries afresh.
            _running.TryRemove(new KeyValuePair<string, Lazy<Task>>(key, entry));
        }
    }
}
