using System.Formats.Tar;
using CriShim.TestImages;
using Grpc.Core;

namespace CriShim.Integration;

/// <summary>
/// Migration between two daemons that share nothing but a registry or a checkpoint directory: each has its
/// own state root, run root and bridge network (see <see cref="Daemon"/> and <see cref="TestNetwork"/>).
/// </summary>
[Collection(RegistryCollection.Name)]
public class MigrationTests(RegistryFixture registry)
{
    private const string Handler = "runc";

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>Counts in a shell variable (memory, not a file), printing each value to the log every 0.2 s.</summary>
    private static Runtime.V1.ContainerConfig Counter(string name, string image) =>
        Cri.Container(name, image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo \"count $i\"; sleep 0.2; done");


    private static async Task<long> WaitForCountsAsync(Daemon daemon, string id)
    {
        string log = (await daemon.StatusAsync(id)).LogPath;
        await Cri.WaitUntilAsync(() => Task.FromResult(CounterLog.Counts(CounterLog.ReadShared(log)).Count >= 3), TimeSpan.FromMinutes(1), $"container {id} to count");
        return CounterLog.Counts(CounterLog.ReadShared(log)).Last();
    }

    /// <summary>
    /// Starts a created (restored) container; returns the last value of the log it was restored with, and the first
    /// values it prints after that.
    /// </summary>
    private static async Task<(long Restored, List<long> Continued)> StartAndReadCountsAsync(Daemon daemon, string id)
    {
        var status = await daemon.StatusAsync(id);
        Assert.Equal(ContainerState.ContainerCreated, status.State);
        string restoredLog = CounterLog.ReadShared(status.LogPath);
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id });
        Assert.Equal(ContainerState.ContainerRunning, (await daemon.StatusAsync(id)).State);
        await Cri.WaitUntilAsync(() => Task.FromResult(CounterLog.Counts(CounterLog.ReadShared(status.LogPath)[restoredLog.Length..]).Count >= 3),
            TimeSpan.FromSeconds(30), $"restored container {id} to count");
        return (CounterLog.Counts(restoredLog).Last(), CounterLog.Counts(CounterLog.ReadShared(status.LogPath)[restoredLog.Length..]));
    }

    /// <summary>
    /// Continued, not restarted: the first value follows one printed before the checkpoint began and is at most one
    /// past the log the archive carried (the log is copied after the dump, so it may hold a few later values).
    /// </summary>
    private static void AssertContinues((long Restored, List<long> Continued) counts, long beforeCheckpoint, string what)
    {
        var (restored, continued) = counts;
        Console.WriteLine($"{what}: {beforeCheckpoint} before the checkpoint, {restored} in the archive's log, then {string.Join(' ', continued.Take(5))}");
        Assert.True(continued[0] > beforeCheckpoint, $"{what} restarted at {continued[0]}; it was at {beforeCheckpoint} before the checkpoint");
        Assert.True(continued[0] <= restored + 1, $"{what} jumped to {continued[0]} past the archive's {restored}");
        Assert.Equal(Enumerable.Range(0, 3).Select(i => continued[0] + i), continued.Take(3));
    }

    private static async Task<string> PodIpAsync(Daemon daemon, string podId) =>
        (await daemon.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId })).Status.Network.Ip;

    private static async Task RemovePodAsync(Daemon daemon, string podId)
    {
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }

    private static string PrivateDir(string prefix)
    {
        string dir = Directory.CreateTempSubdirectory(prefix).FullName;
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return dir;
    }

    /// <summary>A copy of <paramref name="archive"/> with a character device added to its CRIU images, which a restore refuses.</summary>
    private static void WithDeviceNode(string archive, string copy)
    {
        using (var input = File.OpenRead(archive))
        using (var output = File.Create(copy))
        using (var reader = new TarReader(input))
        using (var writer = new TarWriter(output, TarEntryFormat.Pax))
        {
            while (reader.GetNextEntry() is { } entry) writer.WriteEntry(entry);
            writer.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "checkpoint/mem") { DeviceMajor = 1, DeviceMinor = 1 });
        }
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task ACounterCheckpointedOnOneDaemonContinuesOnAnotherFromACheckpointImageInTheRegistry()
    {
        var starting = new[] { Daemon.StartAsync(), Daemon.StartAsync() };
        await using var source = await starting[0];
        await using var target = await starting[1];
        await source.PullAsync(Busybox);
        var sourcePod = Cri.Pod("migrate-from");
        string sourcePodId = await source.RunPodAsync(sourcePod, Handler);
        string original = await source.StartContainerAsync(sourcePodId, sourcePod, Counter("counter", Busybox));
        await WaitForCountsAsync(source, original);
        string sourceIp = await PodIpAsync(source, sourcePodId);
        string dir = PrivateDir("crishim-migrate-");
        string archive = Path.Combine(dir, "counter.tar");

        long beforeCheckpoint = CounterLog.Counts(CounterLog.ReadShared((await source.StatusAsync(original)).LogPath)).Last();
        await source.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = original, Location = archive, Timeout = 120 });
        // gzip, as buildah pushes layers: the target decompresses it before the restore reads it.
        string image = await registry.Registry.PushCheckpointAsync(archive, "counter", $"crishim-test/checkpoint-counter:{Guid.NewGuid():N}", LayerCompression.Gzip);
        await RemovePodAsync(source, sourcePodId);

        // The target pulls it like any image; it is listed, and shows what it is.
        await target.PullAsync(image);
        var pulled = (await target.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = image } })).Image;
        Assert.Equal("counter", pulled.Spec.Annotations["io.kubernetes.cri-o.annotations.checkpoint.name"]);
        Assert.Contains((await target.Images.ListImagesAsync(new ListImagesRequest())).Images, i => i.Id == pulled.Id);
        Assert.Empty(Directory.GetDirectories(Path.Combine(target.Dirs.Root, "images", "layers")));

        var targetPod = Cri.Pod("migrate-to");
        string targetPodId = await target.RunPodAsync(targetPod, Handler);
        var created = await target.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = targetPodId, Config = Counter("counter", image), SandboxConfig = targetPod,
        });
        // The decompressed archive is gone once the container is created; the checkpointed image was pulled from its name.
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(target.Dirs.Root, "images", "ingest")));
        var createdStatus = await target.StatusAsync(created.ContainerId);
        Assert.Equal(Busybox, createdStatus.Image.Image);
        // It names the checkpoint image as it was asked for, pinned to the digest it was pulled by.
        string pulledDigest = pulled.RepoDigests.Single()[(pulled.RepoDigests.Single().IndexOf('@') + 1)..];
        Assert.Equal($"{image}@{pulledDigest}", createdStatus.Annotations["io.crishim.restored-from"]);

        AssertContinues(await StartAndReadCountsAsync(target, created.ContainerId), beforeCheckpoint, "the migrated counter");
        string targetIp = await PodIpAsync(target, targetPodId);
        Console.WriteLine($"pod IP {sourceIp} on the source, {targetIp} on the target");
        Assert.NotEqual(sourceIp, targetIp);
        Assert.StartsWith(TestNetwork.ClaimFor(target.Dirs.Base).SubnetPrefix + ".", targetIp);

        await RemovePodAsync(target, targetPodId);
        await target.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = image } });
        Assert.Null((await target.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = image } })).Image);
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task APodCheckpointedOnOneDaemonIsRestoredWithBothCountersOnAnother()
    {
        var starting = new[] { Daemon.StartAsync(), Daemon.StartAsync() };
        await using var source = await starting[0];
        await using var target = await starting[1];
        await source.PullAsync(Busybox);
        var sourcePod = Cri.Pod("podmigrate-from");
        string sourcePodId = await source.RunPodAsync(sourcePod, Handler);
        var originals = new Dictionary<string, string>();
        foreach (string name in new[] { "alpha", "beta" })
        {
            originals[name] = await source.StartContainerAsync(sourcePodId, sourcePod, Counter(name, Busybox));
        }
        foreach (string id in originals.Values) await WaitForCountsAsync(source, id);
        string checkpoint = PrivateDir("crishim-podmigrate-");
        var checkpointRequest = new CheckpointPodRequest { PodSandboxId = sourcePodId, OutputPath = checkpoint };
        checkpointRequest.ContainerIds.Add(originals.Values);
        var beforeCheckpoint = new Dictionary<string, long>();
        foreach (var (name, id) in originals) beforeCheckpoint[name] = CounterLog.Counts(CounterLog.ReadShared((await source.StatusAsync(id)).LogPath)).Last();
        await source.Runtime.CheckpointPodAsync(checkpointRequest, deadline: DateTime.UtcNow.AddSeconds(120));
        string sourceIp = await PodIpAsync(source, sourcePodId);
        await RemovePodAsync(source, sourcePodId);

        var targetPod = Cri.Pod("podmigrate-to");
        RestorePodRequest Restore(string path)
        {
            var request = new RestorePodRequest { CheckpointPath = path, Config = targetPod, RuntimeHandler = Handler };
            request.ContainerConfigs.Add(Counter("beta", Busybox));
            request.ContainerConfigs.Add(Counter("alpha", Busybox));
            return request;
        }

        // A checkpoint whose second archive holds a device node (its dumps are fine, so the restore gets that far): the
        // first container is made, then everything is removed.
        string broken = PrivateDir("crishim-podmigrate-broken-");
        foreach (string file in Directory.GetFiles(checkpoint)) File.Copy(file, Path.Combine(broken, Path.GetFileName(file)));
        WithDeviceNode(Path.Combine(checkpoint, "beta.tar"), Path.Combine(broken, "beta.tar"));
        var e = await Assert.ThrowsAsync<RpcException>(() => target.Runtime.RestorePodAsync(Restore(broken), deadline: DateTime.UtcNow.AddSeconds(120)).ResponseAsync);
        Console.WriteLine($"broken checkpoint: {e.StatusCode}: {e.Status.Detail}");
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Empty((await target.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty((await target.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
        Assert.Contains($"from checkpoint archive {Path.Combine(broken, "alpha.tar")}", target.Output); // made before beta failed
        var unknownOption = Restore(checkpoint);
        unknownOption.Options["tcp_established"] = "true";
        e = await Assert.ThrowsAsync<RpcException>(() => target.Runtime.RestorePodAsync(unknownOption).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        var missingConfig = Restore(checkpoint);
        missingConfig.ContainerConfigs.RemoveAt(0);
        e = await Assert.ThrowsAsync<RpcException>(() => target.Runtime.RestorePodAsync(missingConfig).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("missing: beta", e.Status.Detail);
        // A config whose command or image is not the checkpointed one: refused before anything is created.
        var otherCommand = Restore(checkpoint);
        otherCommand.ContainerConfigs[0] = Cri.Container("beta", Busybox, "sh", "-c", "echo not the counter");
        e = await Assert.ThrowsAsync<RpcException>(() => target.Runtime.RestorePodAsync(otherCommand).ResponseAsync);
        Console.WriteLine($"another command: {e.StatusCode}: {e.Status.Detail}");
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("container_configs \"beta\": command", e.Status.Detail);
        var otherImage = Restore(checkpoint);
        otherImage.ContainerConfigs[1].Image.Image = registry.Reference(TestImageNames.BusyboxStatic);
        e = await Assert.ThrowsAsync<RpcException>(() => target.Runtime.RestorePodAsync(otherImage).ResponseAsync);
        Console.WriteLine($"another image: {e.StatusCode}: {e.Status.Detail}");
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains($"container_configs \"alpha\": image \"{registry.Reference(TestImageNames.BusyboxStatic)}\"", e.Status.Detail);
        Assert.Empty((await target.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty((await target.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);

        // Another tag of the checkpointed image, which this node resolves to it, is the same image.
        await target.PullAsync(registry.Reference(TestImageNames.BusyboxOtherTag));
        var sameImageOtherTag = Restore(checkpoint);
        sameImageOtherTag.ContainerConfigs[1].Image.Image = registry.Reference(TestImageNames.BusyboxOtherTag);

        var restored = await target.Runtime.RestorePodAsync(sameImageOtherTag, deadline: DateTime.UtcNow.AddSeconds(120));

        Assert.Equal(["alpha", "beta"], restored.RestoredContainers.Select(c => c.Name).Order());
        Assert.Equal(restored.PodSandboxId, (await target.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items.Single().Id);
        foreach (var container in restored.RestoredContainers)
        {
            AssertContinues(await StartAndReadCountsAsync(target, container.ContainerId), beforeCheckpoint[container.Name], $"restored {container.Name}");
        }
        string targetIp = await PodIpAsync(target, restored.PodSandboxId);
        Console.WriteLine($"pod IP {sourceIp} on the source, {targetIp} on the target");
        Assert.NotEqual(sourceIp, targetIp);

        await RemovePodAsync(target, restored.PodSandboxId);
        Directory.Delete(checkpoint, true);
        Directory.Delete(broken, true);
    }
}
