using System.Runtime.InteropServices;
using Tmds.Linux;

namespace CriShim.NativeInterop;

internal static unsafe class Errno
{
    

    public static string Describe(int errno)
    {
        // XSI strerror_r fills the buffer; Tmds.LibC binds that variant.
        byte* buffer = stackalloc byte[256];
        return LibC.strerror_r(errno, buffer, 256) == 0
            ? Marshal.PtrToStringUTF8((nint)buffer) ?? $"errno {errno}"
            : $"errno {errno}";
    }

    /// <summary>Throws with the current errno when a libc call returned -1.</summary>
    public static int Check(int result, string call, string? subject = null) =>
        result == -1 ? throw new NativeCallException(call, LibC.errno, subject) : result;

    public static long Check(long result, string call, string? subject = null) =>
        result == -1 ? throw new NativeCallException(call, LibC.errno, subject) : result;
}
