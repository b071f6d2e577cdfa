using System.Text.Json;
using CriShim.Runtime.Checkpoint;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Checkpoint;

public class ContainerdStatusDumpTests
{
    /// <summary>
    /// containerd reads status.dump with Go's encoding/json into the generated ContainerStatus: it matches proto
    /// field names (created_at, not createdAt) and reads enums and int64s only from JSON numbers.
    /// </summary>
    [Fact]
    public void IsWhatGoEncodingJsonReadsIntoAContainerStatus()
    {
        var status = new ContainerStatus
        {
            Id = "abc",
            Metadata = new ContainerMetadata { Name = "counter", Attempt = 2 },
            State = ContainerState.ContainerRunning,
            CreatedAt = 1_700_000_000_123_456_789,
            Image = new ImageSpec { Image = "busybox:latest" },
            ImageRef = "sha256:1234",
            LogPath = "/var/log/pods/x/counter/0.log",
            User = new ContainerUser { Linux = new LinuxContainerUser { Uid = 1000, Gid = 1000, SupplementalGroups = { 10, 20 } } },
            Resources = new ContainerResources { Linux = new LinuxContainerResources { MemoryLimitInBytes = 64 << 20 } },
        };
        status.Annotations.Add("io.kubernetes.pod.uid", "uid-1");
        status.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = "/srv/data", Readonly = true });

        using var json = JsonDocument.Parse(ContainerdStatusDump.Of(status));
        var root = json.RootElement;

        Assert.Equal("counter", root.GetProperty("metadata").GetProperty("name").GetString());
        Assert.Equal(2, root.GetProperty("metadata").GetProperty("attempt").GetInt32());
        Assert.Equal((int)ContainerState.ContainerRunning, root.GetProperty("state").GetInt32());
        Assert.Equal(1_700_000_000_123_456_789, root.GetProperty("created_at").GetInt64());
        Assert.Equal("sha256:1234", root.GetProperty("image_ref").GetString());
        Assert.Equal("busybox:latest", root.GetProperty("image").GetProperty("image").GetString());
        Assert.Equal("/srv/data", root.GetProperty("mounts")[0].GetProperty("host_path").GetString());
        Assert.Equal("uid-1", root.GetProperty("annotations").GetProperty("io.kubernetes.pod.uid").GetString());
        var user = root.GetProperty("user").GetProperty("linux");
        Assert.Equal(1000, user.GetProperty("uid").GetInt64());
        Assert.Equal([10L, 20L], user.GetProperty("supplemental_groups").EnumerateArray().Select(g => g.GetInt64()));
        Assert.Equal(64 << 20, root.GetProperty("resources").GetProperty("linux").GetProperty("memory_limit_in_bytes").GetInt64());
    }
}
