namespace CriShim.NativeInterop;

/// <summary>A failed libc call or syscall: which call, on what, and the errno it returned.</summary>
public sealed class NativeCallException : IOException
{
    public NativeCallException(string call, int errno, string? subject = null)
        : base(Describe(call, errno, subject))
    {
        Call = call;
        Errno = errno;
        Subject = subject;
    }

    public string Call { get; }
    public int Errno { get; }
    public string? Subject { get; }

    public bool IsNotFound => Errno == Tmds.Linux.LibC.ENOENT || Errno == Tmds.Linux.LibC.ESRCH;

    private static string Describe(string call, int errno, string? subject) =>
        subject is null
            ? $"{call}: {CriShim.NativeInterop.Errno.Describe(errno)} (errno {errno})"
            : $"{call} {subject}: {CriShim.NativeInterop.Errno.Describe(errno)} (errno {errno})";
}
