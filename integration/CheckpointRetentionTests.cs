using CriShim.TestImages;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class CheckpointRetentionTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private static string Archive(string container, string time) => $"checkpoint-retain_crishim-it-{container}-{time}.tar";

    [Fact]
    public async Task OnlyThisContainersOlderKubeletArchivesAreRemoved()
    {
        await using var daemon = await Daemon.StartAsync(configToml: "[checkpoint]\nkeep_per_container = 2\n");
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod("retain");
        string podId = await daemon.RunPodAsync(podConfig);
        string id = await daemon.StartContainerAsync(podId, podConfig, Cri.Container("app", Busybox, "sleep", "3600"));

        string dir = Directory.CreateTempSubdirectory("crishim-retention-").FullName;
        string outside = Directory.CreateTempSubdirectory("crishim-retention-outside-").FullName;
        string[] older = [Archive("app", "2020-01-01T00:00:00Z"), Archive("app", "2020-01-02T00:00:00Z")];
        string newer = Archive("app", "2020-01-03T00:00:00+01:00");
        string[] untouched =
        [
            newer,
            Archive("other", "2019-01-01T00:00:00Z"),
            Archive("app", "2019-01-01T00:00:00Z") + ".bak",
            "checkpoint-retain_crishim-it-app-latest.tar",
            "notes.txt",
        ];
        foreach (string name in older.Concat(untouched)) File.WriteAllText(Path.Combine(dir, name), name);
        string aDirectory = Path.Combine(dir, Archive("app", "2018-01-01T00:00:00Z"));
        Directory.CreateDirectory(aDirectory);
        string target = Path.Combine(outside, "target");
        File.WriteAllText(target, "kept");
        string aSymlink = Path.Combine(dir, Archive("app", "2017-01-01T00:00:00Z"));
        File.CreateSymbolicLink(aSymlink, target);

        string location = Path.Combine(dir, Archive("app", $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ}"));
        await daemon.Runtime.CheckpointContainerAsync(new CheckpointContainerRequest { ContainerId = id, Location = location, Timeout = 120 });

        Assert.True(File.Exists(location));
        foreach (string name in untouched) Assert.True(File.Exists(Path.Combine(dir, name)), $"{name} was removed");
        foreach (string name in older) Assert.False(File.Exists(Path.Combine(dir, name)), $"{name} was kept");
        Assert.True(Directory.Exists(aDirectory));
        Assert.Equal(target, new FileInfo(aSymlink).LinkTarget);
        Assert.Equal("kept", File.ReadAllText(target));
        Assert.Contains("checkpoint retention: removed", daemon.Output);

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        Directory.Delete(dir, true);
        Directory.Delete(outside, true);
    }
}
