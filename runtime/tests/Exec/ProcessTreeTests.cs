using System.Diagnostics;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Tests.Exec;

public sealed class ProcessTreeTests
{
    [Fact]
    public void TheProcessesNamingAnArgumentAreKilledWithEveryDescendant()
    {
        string bundle = $"/nonexistent/bundle-{Guid.NewGuid():N}";
        // A shell naming the path as an argument (as conmon and the runtime name their bundle) and its children.
        using var holder = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 600 & sleep 600 & wait", bundle]) { UseShellExecute = false })!;
        var children = new HashSet<int>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (children.Count < 2 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
            children = ProcessTree.WithDescendants([holder.Id]);
            children.Remove(holder.Id);
        }
        Assert.Equal(2, children.Count);
        // Only an exact argument counts: a longer path beginning with it is another bundle.
        Assert.Empty(ProcessTree.Naming(bundle[..^1]));
        Assert.Equal([holder.Id], ProcessTree.Naming(bundle));

        ProcessTree.Kill(ProcessTree.Naming(bundle));

        Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(10)));
        // A SIGKILLed process takes a moment to die.
        deadline = DateTime.UtcNow.AddSeconds(10);
        while (children.Any(pid => ProcessIdentity.Of(pid) is not null) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.All(children, pid => Assert.Null(ProcessIdentity.Of(pid)));
    }
}
