namespace CriShim.Runtime.Streaming;

/// <summary>A validated Exec, Attach or PortForward request, parked behind a single-use token.</summary>
public abstract record StreamingRequest;

public sealed record ExecStreamRequest(string ContainerId, IReadOnlyList<string> Command, bool Tty, bool Stdin, bool Stdout, bool Stderr)
    : StreamingRequest;

public sealed record AttachStreamRequest(string ContainerId, bool Tty, bool Stdin, bool Stdout, bool Stderr) : StreamingRequest;

public sealed record PortForwardStreamRequest(string PodId, IReadOnlyList<int> Ports) : StreamingRequest;
