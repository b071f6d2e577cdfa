using Tmds.Linux;

namespace CriShim.NativeInterop;

/// <summary>A device node's kind ('c' or 'b'), numbers and permission bits.</summary>
public readonly record struct DeviceNode(char Type, long Major, long Minor, int FileMode);

public static unsafe class Devices
{
    private const int TypeMask = 0xF000, CharacterDevice = 0x2000, BlockDevice = 0x6000;

    /// <summary>The device at <paramref name="path"/> (following symlinks); null when it is not a device node.</summary>
    public static DeviceNode? Stat(string path)
    {
        statx buffer;
        fixed (byte* p = Utf8Path.From(path))
        {
            Errno.Check(LibC.statx(LibC.AT_FDCWD, p, 0, LibC.STATX_TYPE | LibC.STATX_MODE, &buffer), "statx", path);
        }
        int mode = buffer.stx_mode;
        char? type = (mode & TypeMask) switch
        {
            CharacterDevice => 'c',
            BlockDevice => 'b',
            _ => null,
        };
        return type is null ? null : new DeviceNode(type.Value, buffer.stx_rdev_major, buffer.stx_rdev_minor, mode & 0xFFF);
    }
}
