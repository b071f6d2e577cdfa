namespace CriShim.Runtime;

// The domain's errors: the one closed set Server/ErrorMappingInterceptor maps to status codes, by type
// only. Anything else (an ArgumentException included) is a CriShim bug and answers INTERNAL.

/// <summary>The request itself is malformed or asks for what cannot run; mapped to InvalidArgument.</summary>
public sealed class InvalidRequestException(string message) : Exception(message);

/// <summary>A domain-level "no such object"; mapped to NotFound.</summary>
public sealed class NotFoundException(string message) : Exception(message);

/// <summary>The object exists but is in the wrong state for the call; mapped to FailedPrecondition.</summary>
public sealed class WrongStateException(string message) : Exception(message);

/// <summary>A registry refused the credentials (or wanted some); mapped to Unauthenticated.</summary>
public sealed class UnauthenticatedException(string message) : Exception(message);

/// <summary>A name is already taken; mapped to AlreadyExists. The message names the holder.</summary>
public sealed class AlreadyExistsException(string message) : Exception(message);

/// <summary>Something from outside (a registry's manifest, token or image config) is larger than the daemon accepts; mapped to ResourceExhausted.</summary>
public sealed class LimitExceededException(string message) : Exception(message)
{
    /// <summary>The one wording of every size cap: what was refused and the limit it passed.</summary>
    public static LimitExceededException Over(string what, long limit) => new($"{what} is larger than {limit / 1024} KiB");
}

/// <summary>Checkpointing cannot run on this node at all; mapped to UNIMPLEMENTED. The message starts
/// with "method CheckpointContainer not implemented" (or CheckpointPod), which the kubelet's conformance test skips on.</summary>
public sealed class CheckpointUnavailableException(string method, string why)
    : Exception($"method {method} not implemented: {why}");

/// <summary>Too little disk at the archive's location; mapped to RESOURCE_EXHAUSTED.</summary>
public sealed class InsufficientSpaceException(string message) : Exception(message);
