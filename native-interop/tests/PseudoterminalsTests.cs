using CriShim.NativeInterop;

namespace CriShim.NativeInterop.Tests;

public class PseudoterminalsTests
{
    [Fact]
    public void APairOpensWithAnUnlockedSlaveAndKeepsItsWindowSize()
    {
        var pair = Pseudoterminals.Open();
        using var master = pair.Master;
        Assert.StartsWith("/dev/pts/", pair.SlavePath);
        Assert.True(File.Exists(pair.SlavePath));
        Pseudoterminals.MakeRaw(master);
        Pseudoterminals.SetWindowSize(master, 132, 43);
        Assert.Equal(((ushort)132, (ushort)43), Pseudoterminals.GetWindowSize(master));
    }
}
