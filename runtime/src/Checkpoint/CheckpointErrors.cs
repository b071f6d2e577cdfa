namespace CriShim.Runtime.Checkpoint;

/// <summary>Checkpointing cannot run on this node at all; mapped to UNIMPLEMENTED. The message starts
/// with "method CheckpointContainer not implemented" (or CheckpointPod), which the kubelet's conformance test skips on.</summary>
public sealed class CheckpointUnavailableException(string method, string why)
    : Exception($"method {method} not implemented: {why}");

/// <summary>Too little disk at the archive's location; mapped to RESOURCE_EXHAUSTED.</summary>
public sealed class InsufficientSpaceException(string message) : Exception(message);

/// <summary>The checkpoint ran out of time in <see cref="Phase"/>; mapped to DEADLINE_EXCEEDED.</summary>
public sealed class CheckpointTimeoutException(string phase, TimeSpan limit)
    : TimeoutException($"checkpoint did not finish within {limit.TotalSeconds:0.###} s: timed out while {phase}; nothing was written, and every frozen container is thawed as soon as the dump under way ends")
{
    public string Phase { get; } = phase;
}
