using CriShim.TestImages;

namespace CriShim.Integration;

/// <summary>StreamContainers, StreamPodSandboxes and StreamImages (KEP-5825) answer as their List calls do.</summary>
[Collection(RegistryCollection.Name)]
public class StreamListTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);
    private string BusyboxStatic => registry.Reference(TestImageNames.BusyboxStatic);

    /// <summary>Every item of the stream, checking that no response is empty and no item comes twice.</summary>
    private static async Task<List<string>> CollectAsync<TResponse>(AsyncServerStreamingCall<TResponse> call, Func<TResponse, IEnumerable<string>> ids)
    {
        using (call)
        {
            var all = new List<string>();
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                var batch = ids(response).ToList();
                Assert.NotEmpty(batch);
                all.AddRange(batch);
            }
            Assert.Equal(all.Count, all.Distinct().Count());
            return all;
        }
    }

    private static List<string> Sorted(IEnumerable<string> ids) => ids.Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task StreamsReturnWhatTheListCallsReturnWithTheSameFilters()
    {
        await using var daemon = await Daemon.StartAsync();
        await daemon.PullAsync(Busybox);
        await daemon.PullAsync(BusyboxStatic);
        var podA = Cri.Pod("stream-a");
        var podB = Cri.Pod("stream-b");
        string podAId = await daemon.RunPodAsync(podA);
        string podBId = await daemon.RunPodAsync(podB);
        string runningA = await daemon.StartContainerAsync(podAId, podA, Cri.Container("run-a", Busybox, "sleep", "3600"));
        string createdA = (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podAId, Config = Cri.Container("idle-a", Busybox, "sleep", "3600"), SandboxConfig = podA,
        })).ContainerId;
        string runningB = await daemon.StartContainerAsync(podBId, podB, Cri.Container("run-b", Busybox, "sleep", "3600"));
        await daemon.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podBId });

        var containerFilters = new (ContainerFilter? Filter, string[] Expected)[]
        {
            (null, [runningA, createdA, runningB]),
            (new ContainerFilter { PodSandboxId = podAId }, [runningA, createdA]),
            (new ContainerFilter { State = new ContainerStateValue { State = ContainerState.ContainerRunning } }, [runningA]),
            (new ContainerFilter { State = new ContainerStateValue { State = ContainerState.ContainerExited } }, [runningB]),
            (new ContainerFilter { LabelSelector = { ["container"] = "idle-a" } }, [createdA]),
            (new ContainerFilter { Id = runningB[..12] }, [runningB]),
            (new ContainerFilter { PodSandboxId = "no-such-pod" }, []),
        };
        foreach (var (filter, expected) in containerFilters)
        {
            var listed = (await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = filter })).Containers.Select(c => c.Id);
            var streamed = await CollectAsync(daemon.Runtime.StreamContainers(new StreamContainersRequest { Filter = filter }),
                r => r.Containers.Select(c => c.Id));
            Assert.Equal(Sorted(expected), Sorted(streamed));
            Assert.Equal(Sorted(listed), Sorted(streamed));
        }
        // The same items, not only the same ids.
        using (var call = daemon.Runtime.StreamContainers(new StreamContainersRequest { Filter = new ContainerFilter { Id = runningA } }))
        {
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var listed = (await daemon.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { Id = runningA } })).Containers;
            Assert.Equal(Assert.Single(listed), Assert.Single(call.ResponseStream.Current.Containers));
        }

        var podFilters = new (PodSandboxFilter? Filter, string[] Expected)[]
        {
            (null, [podAId, podBId]),
            (new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } }, [podAId]),
            (new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxNotready } }, [podBId]),
            (new PodSandboxFilter { LabelSelector = { ["test"] = "stream-b" } }, [podBId]),
            (new PodSandboxFilter { Id = podAId[..12] }, [podAId]),
            (new PodSandboxFilter { LabelSelector = { ["test"] = "nothing" } }, []),
        };
        foreach (var (filter, expected) in podFilters)
        {
            var listed = (await daemon.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest { Filter = filter })).Items.Select(p => p.Id);
            var streamed = await CollectAsync(daemon.Runtime.StreamPodSandboxes(new StreamPodSandboxesRequest { Filter = filter }),
                r => r.PodSandboxes.Select(p => p.Id));
            Assert.Equal(Sorted(expected), Sorted(streamed));
            Assert.Equal(Sorted(listed), Sorted(streamed));
        }

        string busyboxId = (await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = Busybox } })).Image.Id;
        string staticId = (await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = BusyboxStatic } })).Image.Id;
        var imageFilters = new (ImageFilter? Filter, string[] Expected)[]
        {
            (null, [busyboxId, staticId]),
            (new ImageFilter { Image = new ImageSpec { Image = BusyboxStatic } }, [staticId]),
            (new ImageFilter { Image = new ImageSpec { Image = registry.Reference(TestImageNames.User) } }, []),
        };
        foreach (var (filter, expected) in imageFilters)
        {
            var listed = (await daemon.Images.ListImagesAsync(new ListImagesRequest { Filter = filter })).Images.Select(i => i.Id);
            var streamed = await CollectAsync(daemon.Images.StreamImages(new StreamImagesRequest { Filter = filter }), r => r.Images.Select(i => i.Id));
            Assert.Equal(Sorted(expected), Sorted(streamed));
            Assert.Equal(Sorted(listed), Sorted(streamed));
        }

        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podAId });
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podBId });
    }

    [Fact]
    public async Task UpdatePodSandboxResourcesRecordsThePodLevelResources()
    {
        await using var daemon = await Daemon.StartAsync();
        string podId = await daemon.RunPodAsync(Cri.Pod("resize"));
        var resources = new LinuxContainerResources { CpuShares = 1024, MemoryLimitInBytes = 256 << 20 };
        var overhead = new LinuxContainerResources { CpuShares = 10, MemoryLimitInBytes = 16 << 20 };
        await daemon.Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest
        {
            PodSandboxId = podId, Resources = resources, Overhead = overhead,
        });
        using (var record = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(daemon.Dirs.Root, "pods", podId, "record.json"))))
        {
            Assert.Equal(resources, LinuxContainerResources.Parser.ParseFrom(record.RootElement.GetProperty("Resources").GetBytesFromBase64()));
            Assert.Equal(overhead, LinuxContainerResources.Parser.ParseFrom(record.RootElement.GetProperty("Overhead").GetBytesFromBase64()));
        }

        var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest
        {
            PodSandboxId = "no-such-pod", Resources = resources,
        }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
    }
}
