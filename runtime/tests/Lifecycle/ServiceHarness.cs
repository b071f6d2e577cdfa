using CriShim.Runtime.Config;
using CriShim.Runtime.Containers;
using CriShim.Runtime.Events;
using CriShim.Runtime.Images;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Pods;
using CriShim.Runtime.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Lifecycle;

/// <summary>The rootfs: removal and the diff capture recorded, nothing mounted; the writable layer is an empty directory.</summary>
public sealed class FakeRootfs(CallLog log, string upperDir) : IRootfsService
{
    public Task<string> MountAsync(string containerId, StoredImage image, CancellationToken cancellationToken, RootfsIdMap? idMap = null) =>
        throw new NotSupportedException();

    public Task UnmountAsync(string containerId, CancellationToken cancellationToken)
    {
        log.Add($"rootfs.unmount {containerId}");
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string containerId, CancellationToken cancellationToken)
    {
        log.Add($"rootfs.remove {containerId}");
        return Task.CompletedTask;
    }

    public string UpperDir(string containerId) => upperDir;

    public IReadOnlyList<RootfsChange> Changes(string containerId)
    {
        log.Add($"rootfs.changes {containerId}");
        return [];
    }

    public ulong WritableLayerBytes(string containerId) => 0;
}

/// <summary>
/// The container and pod services over fakes of the runtime, the monitor, the rootfs and the
/// network, with real record stores in a temporary directory: no root, no runc, no conmon.
/// </summary>
public sealed class ServiceHarness : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-lifecycle-").FullName;
    private readonly List<StandInProcess> _processes = [];

    public CallLog Log { get; } = new();
    public FakeClock Clock { get; } = new();
    public SequentialIds Ids { get; } = new();
    public FakeMonitor Monitor { get; }
    public FakeRuntime Runtime { get; }
    public CriShimConfig Config { get; }
    public RecordStore<ContainerRecord> ContainerRecords { get; }
    public RecordStore<PodSandboxRecord> PodRecords { get; }
    public ContainerService Containers { get; }
    public ContainerLocks Locks { get; } = new();
    public ContainerExitRecorder Exits { get; }
    public ContainerLookup Lookup { get; }
    public ContainerOperations Operations { get; }
    public PodSandboxService Pods { get; }
    public ContainerEventBus Bus { get; } = new(TimeProvider.System);
    public ContainerEventPublisher Events { get; }
    public StatePaths Paths { get; }
    public RuntimeHandlers Handlers { get; }
    public FakeRootfs Rootfs { get; }
    /// <summary>A directory for the test's own files (checkpoint archives).</summary>
    public string Scratch { get; }

    public ServiceHarness()
    {
        Monitor = new FakeMonitor(Log, Clock);
        Runtime = new FakeRuntime(Log, Monitor, Path.Combine(_root, "runtime"));
        Config = new CriShimConfig { State = { Root = Path.Combine(_root, "lib"), RunRoot = Path.Combine(_root, "run") } };
        var paths = Paths = new StatePaths(Config.State);
        var handlers = Handlers = new RuntimeHandlers(Runtime.Handler, [Runtime]);
        Scratch = Directory.CreateDirectory(Path.Combine(_root, "scratch")).FullName;
        Rootfs = new FakeRootfs(Log, Directory.CreateDirectory(Path.Combine(_root, "upper")).FullName);
        PodRecords = new RecordStore<PodSandboxRecord>(paths.Pods, PodSandboxRecordJson.Default.PodSandboxRecord, NullLogger.Instance);
        ContainerRecords = new RecordStore<ContainerRecord>(paths.Containers, ContainerRecordJson.Default.ContainerRecord, NullLogger.Instance);
        var podLocks = new PodLocks();
        string imagesRoot = Path.Combine(_root, "images");
        var content = new ContentStore(imagesRoot);
        var imageVolumes = new ImageVolumes(new ImageStore(imagesRoot, content), new LayerStore(imagesRoot, content.IngestDirectory),
            NullLogger<ImageVolumes>.Instance);
        var events = Events = new ContainerEventPublisher(Bus, Clock, PodRecords, ContainerRecords);
        Exits = new ContainerExitRecorder(paths, handlers, Monitor, ContainerRecords, Clock, events, NullLogger<ContainerExitRecorder>.Instance);
        Lookup = new ContainerLookup(paths, ContainerRecords, Exits);
        Operations = new ContainerOperations(paths, handlers, Monitor, Ids, ContainerRecords, Locks, Lookup, Exits);
        var containers = new ContainerService(Config.Runtime, Config.Checkpoint, Config.Cdi, paths, handlers, Monitor, Ids, Clock, PodRecords, podLocks, ContainerRecords,
            Locks, Lookup, Exits, new NoImages(), Rootfs, imageVolumes, events, NullLogger<ContainerService>.Instance);
        var pods = new PodSandboxService(Config.Runtime, paths, handlers, Monitor, Ids, Clock, PodRecords, podLocks, containers, new FakePodNetwork(Log),
            events, NullLogger<PodSandboxService>.Instance);
        Containers = containers;
        Pods = pods;
    }

    private sealed class NoImages : IImageLookup
    {
        public StoredImage? Find(string reference) => null;
    }

    /// <summary>Fails unless the container's lock can be taken within a bound (a leaked lock would hang the next call).</summary>
    public async Task AssertUnlockedAsync(string id)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var _ = await Locks.AcquireAsync(id, bound.Token);
    }

    public StandInProcess NewProcess()
    {
        var process = new StandInProcess();
        _processes.Add(process);
        return process;
    }

    /// <summary>A ready pod whose infra is a stand-in process, as RunPodSandbox leaves it.</summary>
    public PodSandboxRecord ReadyPod(string id = "pod1")
    {
        var infra = NewProcess();
        Runtime.Run(id, infra);
        string netns = Path.Combine(_root, $"netns-{id}");
        File.WriteAllText(netns, "");
        var record = new PodSandboxRecord
        {
            Id = id,
            Config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = id, Namespace = "default", Uid = id } }.ToByteArray(),
            RuntimeHandler = Runtime.Handler,
            CreatedAtNanos = 1,
            Ready = true,
            InfraPid = infra.Pid,
            Infra = infra.Identity,
            NetNsPath = netns,
        };
        PodRecords.Add(record);
        return record;
    }

    /// <summary>A container as CreateContainer leaves it: its init process created, its monitor running.</summary>
    public (ContainerRecord Record, StandInProcess Init, StandInProcess Monitor) CreatedContainer(string id, string podId = "pod1")
    {
        var init = NewProcess();
        var monitor = NewProcess();
        Runtime.Run(id, init);
        var record = new ContainerRecord
        {
            Id = id,
            PodId = podId,
            Config = new ContainerConfig { Metadata = new ContainerMetadata { Name = id } }.ToByteArray(),
            ImageId = "sha256:image",
            ImageName = "example.com/image:1",
            ImageRef = "sha256:image",
            RuntimeHandler = Runtime.Handler,
            CreatedAtNanos = 1,
            LogPath = Path.Combine(_root, $"{id}.log"),
            StopSignal = "SIGTERM",
            Pid = init.Pid,
            Init = init.Identity,
            Monitor = monitor.Identity,
        };
        ContainerRecords.Add(record);
        // The spec conmon created it from, which a checkpoint archives.
        Directory.CreateDirectory(Paths.ContainerBundle(id));
        File.WriteAllText(Path.Combine(Paths.ContainerBundle(id), "config.json"), """{"mounts":[]}""");
        return (record, init, monitor);
    }

    public async Task<(ContainerRecord Record, StandInProcess Init, StandInProcess Monitor)> RunningContainerAsync(string id, string podId = "pod1")
    {
        var created = CreatedContainer(id, podId);
        await Containers.StartAsync(id, CancellationToken.None);
        return created;
    }

    public void Dispose()
    {
        foreach (var process in _processes) process.Dispose();
        Directory.Delete(_root, recursive: true);
    }
}
