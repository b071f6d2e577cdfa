using System.Text.Json.Nodes;
using CriShim.Runtime.Checkpoint;
using CriShim.Runtime.Restore;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Restore;

/// <summary>Missing bind-mount sources a restore recreates on the host from the archive's bind.mounts.</summary>
public sealed class BindMountSourceTests : IDisposable
{
    private const UnixFileMode Directory0755 = (UnixFileMode)0b111_101_101;
    private const UnixFileMode File0644 = (UnixFileMode)0b110_100_100;

    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-bindsource-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static ExtractedCheckpoint Dumped(params BindMountDump[] mounts) => new("/nonexistent",
        new CheckpointConfigDump("abc", "counter", "", "", "busybox", "runc", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, false),
        new JsonObject(), mounts, []);

    private static ContainerConfig Config(params (string ContainerPath, string HostPath)[] mounts)
    {
        var config = new ContainerConfig();
        config.Mounts.AddRange(mounts.Select(m => new Mount { ContainerPath = m.ContainerPath, HostPath = m.HostPath }));
        return config;
    }

    /// <summary>One list of system mounts serves both sides: what the dump leaves out of bind.mounts, the restore does not ask for.</summary>
    [Fact]
    public void TheCheckpointAndTheRestoreSkipTheSameSystemMounts()
    {
        string source = Directory.CreateDirectory(Path.Combine(_dir, "source")).FullName;
        var spec = new JsonObject
        {
            ["mounts"] = new JsonArray([.. new[] { "/data", "/run", "/run/secrets", "/dev/termination-log", "/etc/hosts" }.Select(destination =>
                (JsonNode)new JsonObject { ["destination"] = destination, ["type"] = "bind", ["source"] = source })]),
        };

        Assert.Equal(["/data"], CheckpointPipeline.BindMounts(spec).Select(m => m.Destination));
        var image = new CriShim.Runtime.Images.StoredImage("sha256:1", [], [], 0, new CriShim.Runtime.Images.ImageRuntimeConfig([], [], [], "", "", "", [], new Dictionary<string, string>()), false, new Dictionary<string, string>());
        var checkpoint = Dumped() with { Spec = spec };
        ContainerRestore.RequireBindMounts(checkpoint, Config(("/data", source)), image, "/a.tar");
        var e = Assert.Throws<WrongStateException>(() => ContainerRestore.RequireBindMounts(checkpoint, Config(), image, "/a.tar"));
        Assert.EndsWith("expects these bind mounts in the container config: /data", e.Message);
    }

    [Fact]
    public void TheArchiveChoosesOnlyFileOrDirectoryNotTheHostModes()
    {
        string directory = Path.Combine(_dir, "a", "data");
        string file = Path.Combine(_dir, "b", "conf");

        ContainerRestore.RecreateBindMountSources(
            Dumped(new BindMountDump("/x", "/data", "directory", 0b111_111_111), new BindMountDump("/y", "/conf", "file", 0b110_110_110)),
            Config(("/data", directory), ("/conf", file)));

        Assert.True(Directory.Exists(directory));
        Assert.Equal(Directory0755, File.GetUnixFileMode(directory));
        Assert.Equal(Directory0755, File.GetUnixFileMode(Path.Combine(_dir, "a")));
        Assert.True(File.Exists(file));
        Assert.Equal(File0644, File.GetUnixFileMode(file));
        Assert.Equal(Directory0755, File.GetUnixFileMode(Path.Combine(_dir, "b")));
    }

    [Fact]
    public void ASourceThatCannotBeCreatedRemovesTheOnesCreatedBeforeIt()
    {
        string blocker = Path.Combine(_dir, "regular-file");
        File.WriteAllText(blocker, "");

        Assert.ThrowsAny<IOException>(() => ContainerRestore.RecreateBindMountSources(
            Dumped(new BindMountDump("/x", "/data", "directory", 0b111_101_101), new BindMountDump("/y", "/conf", "file", 0b110_100_100)),
            Config(("/data", Path.Combine(_dir, "a", "data")), ("/conf", Path.Combine(blocker, "conf")))));

        Assert.False(Path.Exists(Path.Combine(_dir, "a")));
    }
}
