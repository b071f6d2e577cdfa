using CriShim.TestImages;
using ContainerConfig = Runtime.V1.ContainerConfig;

namespace CriShim.Integration;

/// <summary>Kubernetes image volumes (KEP-4639, CRI Mount.image): an image's files mounted read-only into a container.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ImageVolumeTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);
    private string Whiteouts => registry.Reference(TestImageNames.Whiteouts);
    private string BusyboxStatic => registry.Reference(TestImageNames.BusyboxStatic);

    /// <summary>A mount as the kubelet sends an image volume: read-only, no host path.</summary>
    private static Mount ImageVolume(string containerPath, string image, string subPath = "") =>
        new() { ContainerPath = containerPath, Image = new ImageSpec { Image = image }, ImageSubPath = subPath, Readonly = true };

    /// <summary>Mount points on the host (the daemon's mount namespace) under the daemon's container state.</summary>
    private static List<string> HostImageVolumeMounts(Daemon daemon) =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4])
            .Where(mountPoint => mountPoint.StartsWith(Path.Combine(daemon.Dirs.Root, "containers") + "/", StringComparison.Ordinal)
                && mountPoint.Contains("/image-volumes/", StringComparison.Ordinal))
            .ToList();

    private static Task RemoveImageAsync(Daemon daemon, string reference) =>
        daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = reference } }).ResponseAsync;

    private static async Task<StatusCode> CreateFailsWith(Daemon daemon, string podId, PodSandboxConfig podConfig, ContainerConfig config)
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = config, SandboxConfig = podConfig,
        }).ResponseAsync);
        return e.StatusCode;
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task AnImageVolumeShowsTheImageReadOnlyExecutableAndGoesAwayWithItsContainer(string handler)
    {
        await using var daemon = await Daemon.StartAsync();
        foreach (string image in new[] { Busybox, Whiteouts, BusyboxStatic }) await daemon.PullAsync(image);
        var podConfig = Cri.Pod($"image-volume-{handler}");
        string podId = await daemon.RunPodAsync(podConfig, handler);
        var config = Cri.Container("reader", Busybox, "sleep", "3600");
        config.Mounts.Add(ImageVolume("/vol", Whiteouts));
        // The same image again, only a sub directory: one mount of the image serves both.
        config.Mounts.Add(ImageVolume("/sub", Whiteouts, WhiteoutPaths.OpaqueDirectory.TrimStart('/')));
        // A single-layer image: overlayfs alone cannot mount one lower dir without an upper one.
        config.Mounts.Add(ImageVolume("/static", BusyboxStatic));
        string id = await daemon.StartContainerAsync(podId, podConfig, config);

        Assert.Equal("kept", await daemon.ShAsync(id, $"cat /vol{WhiteoutPaths.Kept}"));
        // The volume is the image's merged view: whiteouts hide, opaque directories hide what lies below.
        Assert.Equal("absent", await daemon.ShAsync(id, $"test -e /vol{WhiteoutPaths.Removed} && echo present || echo absent"));
        Assert.Equal("new", await daemon.ShAsync(id, $"ls /vol{WhiteoutPaths.OpaqueDirectory}"));
        Assert.Equal("new", await daemon.ShAsync(id, "ls /sub"));
        Assert.Equal("new", await daemon.ShAsync(id, "cat /sub/new"));

        var write = await daemon.ExecAsync(id, "sh", "-c", "echo x > /vol/written");
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Read-only file system", write.Stderr.ToStringUtf8());
        Assert.NotEqual(0, (await daemon.ExecAsync(id, "mkdir", "/sub/dir")).ExitCode);
        // Binaries in an image volume run (no noexec).
        Assert.Equal("ran from the volume", await daemon.ShAsync(id, "/static/bin/busybox echo ran from the volume"));
        // Per-mount options (mountinfo field 6) of the bind in the container.
        var volumeOptions = (await daemon.ShAsync(id, "awk '$5 == \"/vol\" { print $6 }' /proc/self/mountinfo")).Split(',');
        Assert.Contains("ro", volumeOptions);
        Assert.Contains("nosuid", volumeOptions);
        Assert.Contains("nodev", volumeOptions);
        Assert.DoesNotContain("noexec", volumeOptions);

        var status = await daemon.StatusAsync(id);
        Assert.Contains(status.Mounts, m => m.ContainerPath == "/sub" && m.Image.Image == Whiteouts && m.ImageSubPath == "data/opaque");
        // One mount per image: whiteouts (for /vol and /sub) and busybox-static.
        var hostMounts = HostImageVolumeMounts(daemon);
        Assert.Equal(2, hostMounts.Count);
        Assert.All(hostMounts, mountPoint => Assert.Contains(id, mountPoint));

        // The volume's image is in use while the container exists, as the container's own image is.
        var inUse = await Assert.ThrowsAsync<RpcException>(() => RemoveImageAsync(daemon, Whiteouts));
        Assert.Equal(StatusCode.FailedPrecondition, inUse.StatusCode);
        await daemon.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = id, Timeout = 0 });
        Assert.Equal(StatusCode.FailedPrecondition, (await Assert.ThrowsAsync<RpcException>(() => RemoveImageAsync(daemon, Whiteouts))).StatusCode);

        await daemon.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id });
        Assert.Empty(HostImageVolumeMounts(daemon));
        await RemoveImageAsync(daemon, Whiteouts);
        var left = await daemon.Images.ListImagesAsync(new ListImagesRequest());
        Assert.DoesNotContain(left.Images, image => image.Id == registry.Image(TestImageNames.Whiteouts).ImageId);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task BadImageVolumesAreRefusedAndLeaveNothingMounted()
    {
        await using var daemon = await Daemon.StartAsync();
        foreach (string image in new[] { Busybox, Whiteouts }) await daemon.PullAsync(image);
        var podConfig = Cri.Pod("bad-image-volumes");
        string podId = await daemon.RunPodAsync(podConfig);
        ContainerConfig With(Mount mount)
        {
            var config = Cri.Container("refused", Busybox, "sleep", "3600");
            config.Mounts.Add(mount);
            return config;
        }

        // "data/kept" is a file: only directories may be mounted.
        foreach (string subPath in new[] { "missing", "../x", "/data", "data/../..", "data/kept" })
        {
            Assert.Equal(StatusCode.InvalidArgument, await CreateFailsWith(daemon, podId, podConfig, With(ImageVolume("/vol", Whiteouts, subPath))));
        }
        var writable = ImageVolume("/vol", Whiteouts);
        writable.Readonly = false;
        Assert.Equal(StatusCode.InvalidArgument, await CreateFailsWith(daemon, podId, podConfig, With(writable)));

        string notPulled = registry.Reference(TestImageNames.ManyLayers);
        var notFound = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = With(ImageVolume("/vol", notPulled)), SandboxConfig = podConfig,
        }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Contains(notPulled, notFound.Status.Detail);

        Assert.Empty(HostImageVolumeMounts(daemon));
        Assert.Empty((await daemon.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Empty(Directory.GetDirectories(Path.Combine(daemon.Dirs.Root, "containers")));
        // Nothing failed half-way holds the image.
        await RemoveImageAsync(daemon, Whiteouts);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    [Fact]
    public async Task AnImageVolumeOutlivesTheDaemonAndIsUnmountedOnRemovalAfterARestart()
    {
        var dirs = DaemonDirs.Create();
        // Also when an assertion fails: the first daemon's mounts and containers must not outlive the test.
        try
        {
            string podId, id;
            await using (var first = await Daemon.StartAsync(dirs))
            {
                foreach (string image in new[] { Busybox, Whiteouts }) await first.PullAsync(image);
                var podConfig = Cri.Pod("image-volume-restart");
                podId = await first.RunPodAsync(podConfig);
                var config = Cri.Container("reader", Busybox, "sleep", "3600");
                config.Mounts.Add(ImageVolume("/vol", Whiteouts));
                id = await first.StartContainerAsync(podId, podConfig, config);
                await first.KillAsync();
            }
            await using (var second = await Daemon.StartAsync(dirs))
            {
                Assert.Single(HostImageVolumeMounts(second));
                Assert.Equal("kept", await second.ShAsync(id, $"cat /vol{WhiteoutPaths.Kept}"));
                Assert.Equal(StatusCode.FailedPrecondition,
                    (await Assert.ThrowsAsync<RpcException>(() => RemoveImageAsync(second, Whiteouts))).StatusCode);
                await second.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
                Assert.Empty(HostImageVolumeMounts(second));
                await RemoveImageAsync(second, Whiteouts);
            }
        }
        finally
        {
            dirs.Delete();
        }
    }
}
