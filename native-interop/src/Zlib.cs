using System.Runtime.InteropServices;

namespace CriShim.NativeInterop;

/// <summary>
/// zlib streams with a preset dictionary, which System.IO.Compression cannot do and SPDY/3 header
/// compression requires. Binds the system libz.so.1 (present on every Debian system).
/// </summary>
public abstract unsafe partial class ZlibStreamBase : IDisposable
{
    private const string Library = "libz.so.1";
    protected const int ZOk = 0;
    protected const int ZStreamEnd = 1;
    protected const int ZNeedDict = 2;
    protected const int ZBufError = -5;
    protected const int ZSyncFlush = 2;

    [StructLayout(LayoutKind.Sequential)]
    protected struct ZStream
    {
        public byte* NextIn;
        public uint AvailIn;
        public nuint TotalIn;
        public byte* NextOut;
        public uint AvailOut;
        public nuint TotalOut;
        public byte* Message;
        public void* State;
        public void* Alloc;
        public void* Free;
        public void* Opaque;
        public int DataType;
        public nuint Adler;
        public nuint Reserved;
    }

    protected readonly ZStream* Stream;
    private bool _disposed;

    protected ZlibStreamBase()
    {
        Stream = (ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZStream));
    }

    protected static readonly byte[] Version = "1.2.11\0"u8.ToArray();

    [LibraryImport(Library, EntryPoint = "inflateInit_")]
    protected static partial int InflateInit(ZStream* stream, byte* version, int size);
    [LibraryImport(Library, EntryPoint = "inflate")]
    protected static partial int Inflate(ZStream* stream, int flush);
    [LibraryImport(Library, EntryPoint = "inflateSetDictionary")]
    protected static partial int InflateSetDictionary(ZStream* stream, byte* dictionary, uint length);
    [LibraryImport(Library, EntryPoint = "inflateEnd")]
    protected static partial int InflateEnd(ZStream* stream);
    [LibraryImport(Library, EntryPoint = "deflateInit_")]
    protected static partial int DeflateInit(ZStream* stream, int level, byte* version, int size);
    [LibraryImport(Library, EntryPoint = "deflate")]
    protected static partial int Deflate(ZStream* stream, int flush);
    [LibraryImport(Library, EntryPoint = "deflateSetDictionary")]
    protected static partial int DeflateSetDictionary(ZStream* stream, byte* dictionary, uint length);
    [LibraryImport(Library, EntryPoint = "deflateEnd")]
    protected static partial int DeflateEnd(ZStream* stream);

    protected static void Check(int result, string call)
    {
        if (result != ZOk && result != ZStreamEnd) throw new InvalidDataException($"zlib {call} failed ({result})");
    }

    protected abstract void End();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        End();
        NativeMemory.Free(Stream);
        GC.SuppressFinalize(this);
    }
}

/// <summary>One zlib stream inflated block by block (every block ends in a sync flush).</summary>
public sealed unsafe class ZlibInflater : ZlibStreamBase
{
    private readonly byte[] _dictionary;

    public ZlibInflater(byte[] dictionary)
    {
        _dictionary = dictionary;
        fixed (byte* version = Version) Check(InflateInit(Stream, version, sizeof(ZStream)), "inflateInit");
    }

    /// <summary>
    /// Inflates one flushed block of the stream; the zlib state carries over to the next. A block that inflates
    /// to more than <paramref name="maxOutput"/> bytes (a zlib bomb) is refused with InvalidDataException, and
    /// the stream is then unusable.
    /// </summary>
    public byte[] Inflate(ReadOnlySpan<byte> input, int maxOutput)
    {
        var output = new MemoryStream();
        byte[] buffer = new byte[16 * 1024];
        fixed (byte* inputPointer = input)
        fixed (byte* outputPointer = buffer)
        {
            Stream->NextIn = inputPointer;
            Stream->AvailIn = (uint)input.Length;
            while (true)
            {
                Stream->NextOut = outputPointer;
                Stream->AvailOut = (uint)buffer.Length;
                int result = Inflate(Stream, ZSyncFlush);
                if (result == ZNeedDict)
                {
                    fixed (byte* dictionary = _dictionary) Check(InflateSetDictionary(Stream, dictionary, (uint)_dictionary.Length), "inflateSetDictionary");
                    continue;
                }
                int produced = buffer.Length - (int)Stream->AvailOut;
                if (output.Length + produced > maxOutput) throw new InvalidDataException($"a zlib block inflates to more than {maxOutput} bytes");
                output.Write(buffer, 0, produced);
                if (result == ZBufError || (Stream->AvailIn == 0 && Stream->AvailOut != 0)) break;
                if (result == ZStreamEnd) break;
                Check(result, "inflate");
            }
            Stream->NextIn = null;
            Stream->NextOut = null;
        }
        return output.ToArray();
    }

    protected override void End() => InflateEnd(Stream);
}

/// <summary>One zlib stream deflated block by block, each block ending in a sync flush.</summary>
public sealed unsafe class ZlibDeflater : ZlibStreamBase
{
    public ZlibDeflater(byte[] dictionary)
    {
        fixed (byte* version = Version) Check(DeflateInit(Stream, 6, version, sizeof(ZStream)), "deflateInit");
        fixed (byte* pointer = dictionary) Check(DeflateSetDictionary(Stream, pointer, (uint)dictionary.Length), "deflateSetDictionary");
    }

    public byte[] Deflate(ReadOnlySpan<byte> input)
    {
        var output = new MemoryStream();
        byte[] buffer = new byte[16 * 1024];
        fixed (byte* inputPointer = input)
        fixed (byte* outputPointer = buffer)
        {
            Stream->NextIn = inputPointer;
            Stream->AvailIn = (uint)input.Length;
            do
            {
                Stream->NextOut = outputPointer;
                Stream->AvailOut = (uint)buffer.Length;
                Check(Deflate(Stream, ZSyncFlush), "deflate");
                output.Write(buffer, 0, buffer.Length - (int)Stream->AvailOut);
            }
            while (Stream->AvailOut == 0);
            Stream->NextIn = null;
            Stream->NextOut = null;
        }
        return output.ToArray();
    }

    protected override void End() => DeflateEnd(Stream);
}
