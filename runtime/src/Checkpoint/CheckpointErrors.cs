namespace CriShim.Runtime.Checkpoint;

/// <summary>The checkpoint ran out of time in <see cref="Phase"/>; mapped to DEADLINE_EXCEEDED.</summary>
public sealed class CheckpointTimeoutException(string phase, TimeSpan limit)
    : TimeoutException($"checkpoint did not finish within {limit.TotalSeconds:0.###} s: timed out while {phase}; nothing was written, and every frozen container is thawed as soon as the dump under way ends")
{
    public string Phase { get; } = phase;
}
