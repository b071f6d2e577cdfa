using CriShim.NativeInterop;

namespace CriShim.NativeInterop.Tests;

public class FileSystemsTests
{
    [Fact]
    public void StatFsOfProcReportsTheProcMagic()
    {
        var stats = FileSystems.StatFs("/proc");
        Assert.Equal(0x9fa0, stats.Type);
    }

    [Fact]
    public void StatFsOfRootAgreesWithDriveInfo()
    {
        var stats = FileSystems.StatFs("/");
        var drive = new DriveInfo("/");
        Assert.Equal((ulong)drive.TotalSize, stats.TotalBytes);
        Assert.True(stats.UsedInodes > 0);
    }

    [Fact]
    public void StatFsOfMissingPathCarriesErrnoAndCall()
    {
        var e = Assert.Throws<NativeCallException>(() => FileSystems.StatFs("/no/such/path"));
        Assert.Equal(2, e.Errno);
        Assert.Equal("statfs", e.Call);
        Assert.Contains("/no/such/path", e.Message);
        Assert.True(e.IsNotFound);
    }
}

public class MountsTests
{
    [Fact]
    public void BindMountIsVisibleAndUnmountRemovesIt()
    {
        string source = Directory.CreateTempSubdirectory("crishim-src").FullName;
        string target = Directory.CreateTempSubdirectory("crishim-dst").FullName;
        try
        {
            File.WriteAllText(Path.Combine(source, "marker"), "x");
            Mounts.Mount(source, target, null, MountFlags.Bind);
            Assert.True(File.Exists(Path.Combine(target, "marker")));
            Mounts.Unmount(target);
            Assert.False(File.Exists(Path.Combine(target, "marker")));
            Assert.False(Mounts.TryUnmount(target));
        }
        finally
        {
            Mounts.TryUnmount(target, UnmountFlags.Detach);
            Directory.Delete(source, true);
            Directory.Delete(target, true);
        }
    }

    [Fact]
    public void MountOfMissingSourceNamesBoth()
    {
        var e = Assert.Throws<NativeCallException>(() => Mounts.Mount("/no/such/src", "/tmp", null, MountFlags.Bind));
        Assert.Equal("mount", e.Call);
        Assert.Contains("/no/such/src on /tmp", e.Message);
    }
}

public class ProcessesTests
{
    [Fact]
    public void KillOfAGoneProcessReturnsFalse()
    {
        using var process = System.Diagnostics.Process.Start("true")!;
        process.WaitForExit();
        Assert.False(Processes.Kill(process.Id, 0));
        Assert.False(Processes.IsAlive(process.Id));
    }
}

public class NetworkNamespacesTests
{
    [Fact]
    public void PinnedNamespaceHasLoopbackUpAndIsRemovable()
    {
        string path = Path.Combine(Path.GetTempPath(), $"crishim-netns-{Guid.NewGuid():N}");
        string hostNamespace = new FileInfo("/proc/self/ns/net").LinkTarget!;
        NetworkNamespaces.CreatePinned(path);
        try
        {
            Assert.True(NetworkNamespaces.IsPinned(path));
            var ip = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("nsenter", [$"--net={path}", "ip", "-o", "link", "show", "lo"])
            {
                RedirectStandardOutput = true,
            })!;
            string output = ip.StandardOutput.ReadToEnd();
            ip.WaitForExit();
            Assert.Contains("UP", output);
            // The daemon's own thread stayed in the host namespace.
            Assert.Equal(hostNamespace, new FileInfo("/proc/self/ns/net").LinkTarget);
            Assert.Equal(hostNamespace, new FileInfo("/proc/thread-self/ns/net").LinkTarget);
        }
        finally
        {
            NetworkNamespaces.Remove(path);
        }
        Assert.False(File.Exists(path));
    }
}

public class DevicesTests
{
    [Fact]
    public void DevNullIsCharacterDeviceOneThree()
    {
        var node = Devices.Stat("/dev/null");
        Assert.Equal(new DeviceNode('c', 1, 3, 0x1B6), node);
        Assert.Null(Devices.Stat("/etc/hostname"));
    }
}
