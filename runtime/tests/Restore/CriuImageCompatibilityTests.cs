using System.Buffers.Binary;
using CriShim.Runtime.Restore;
using CriShim.Runtime.Server;

namespace CriShim.Runtime.Tests.Restore;

public class CriuImageCompatibilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-criu-images-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A CRIU image as CRIU writes it: its magics, the first entry's size, then that entry with field 1 = <paramref name="field1"/>.</summary>
    private void Image(string name, byte field1, params uint[] magics)
    {
        var bytes = new List<byte>();
        foreach (uint magic in magics) bytes.AddRange(LittleEndian(magic));
        byte[] entry = [0x08, field1, 0x10, 0x01];
        bytes.AddRange(LittleEndian((uint)entry.Length));
        bytes.AddRange(entry);
        File.WriteAllBytes(Path.Combine(_dir, name), [.. bytes]);
    }

    private static byte[] LittleEndian(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }

    private void Inventory(byte version) => Image("inventory.img", version, 0x58313116);

    private void Core(byte march) => Image("core-1.img", march, 0x54564319, 0x55053847);

    [Fact]
    public void ImagesOfThisArchitectureAndAReadableVersionPass()
    {
        Inventory(2);
        Core(1); // x86_64, the machine these tests run on
        CriuImageCompatibility.Check(_dir, "/a.tar");
    }

    [Fact]
    public void ImagesDumpedOnAnotherArchitectureAreAWrongStateWithCriusReason()
    {
        Inventory(2);
        Core(3);
        var e = Assert.Throws<WrongStateException>(() => CriuImageCompatibility.Check(_dir, "/a.tar"));
        Assert.Contains("dumped on aarch64 and this node is x86_64", e.Message);
        Assert.Contains("Core march mismatch 3/1", e.Message);
    }

    [Fact]
    public void ImagesNewerThanThisNodesCriuReadsAreAWrongStateWithCriusReason()
    {
        Inventory(3);
        Core(1);
        var e = Assert.Throws<WrongStateException>(() => CriuImageCompatibility.Check(_dir, "/a.tar"));
        Assert.Contains("Not supported images version 3", e.Message);
    }

    [Fact]
    public void ImagesOfAnotherShapeAreLeftToCriu()
    {
        File.WriteAllBytes(Path.Combine(_dir, "inventory.img"), [1, 2, 3]);
        Image("core-1.img", 3, 0x54564319, 0x12345678);
        CriuImageCompatibility.Check(_dir, "/a.tar");
    }
}
