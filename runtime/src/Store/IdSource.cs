using System.Security.Cryptography;

namespace CriShim.Runtime.Store;

/// <summary>The one source of the ids the daemon hands out: pods, containers, exec pid files.</summary>
public interface IIdSource
{
    /// <summary>A new id: 64 lowercase hex characters, as containerd and CRI-O make them.</summary>
    string NewId();
}

/// <summary>256 random bits, so ids never collide and cannot be guessed.</summary>
public sealed class RandomIdSource : IIdSource
{
    public string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
}

/// <summary>The CRI's timestamps: nanoseconds since the Unix epoch.</summary>
public static class UnixNanos
{
    public static long Now(this TimeProvider time) => Of(time.GetUtcNow());

    public static long Of(DateTimeOffset at) => (at - DateTimeOffset.UnixEpoch).Ticks * 100;
}
