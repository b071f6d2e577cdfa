using System.Diagnostics;
using CriShim.TestImages;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Xunit.Abstractions;

namespace CriShim.Integration;

/// <summary>
/// Hostile input in bulk: every RPC of both CRI services, taken from the service descriptors so a new
/// RPC cannot be missed, gets a few thousand seeded requests full of malformed and extreme values,
/// some against real pods and containers. The daemon must stay up, answer each with a status code
/// that names the caller's mistake (never UNKNOWN, never INTERNAL for input that is merely invalid),
/// and once what the fuzz created is removed, nothing may be left in its state dirs, mounts or
/// processes.
/// </summary>
[Trait("Category", "Fuzz")]
[Collection(RegistryCollection.Name)]
public sealed class FuzzTests(RegistryFixture registry, ITestOutputHelper output)
{
    /// <summary>CRISHIM_FUZZ_SEED replays another run.</summary>
    private const int DefaultSeed = 20261205;
    private const int Batches = 5;
    private const int DefaultRequestsPerBatch = 10;

    /// <summary>RPCs whose requests cost real work (a pod, a container, a CRIU dump, a pull) get fewer.</summary>
    private static readonly Dictionary<string, int> RequestsPerBatch = new()
    {
        ["RunPodSandbox"] = 5, ["CreateContainer"] = 8, ["StartContainer"] = 8, ["PullImage"] = 5,
        ["CheckpointContainer"] = 2, ["CheckpointPod"] = 2,
        // Each waits out its deadline.
        ["GetContainerEvents"] = 3,
    };

    /// <summary>Answers that name a caller's mistake or a missing feature.</summary>
    private static readonly HashSet<StatusCode> Expected =
    [
        StatusCode.OK, StatusCode.InvalidArgument, StatusCode.NotFound, StatusCode.FailedPrecondition,
        StatusCode.ResourceExhausted, StatusCode.AlreadyExists, StatusCode.OutOfRange, StatusCode.Unauthenticated,
    ];

    /// <summary>Above the daemon's 16 MiB receive limit.</summary>
    private const int OverLimitBytes = 17 * 1024 * 1024;

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(bytes => bytes, bytes => bytes);

    private static IEnumerable<MethodDescriptor> AllRpcs => RuntimeService.Descriptor.Methods.Concat(ImageService.Descriptor.Methods);

    private string Busybox => registry.Reference(TestImageNames.Busybox);

    private sealed record Answer(string Rpc, StatusCode Code, string Detail, int Request, TimeSpan Took);

    /// <summary>Real objects the fuzz aims at; re-created at each batch, as the fuzz may remove them.</summary>
    private sealed record Fixtures(PodSandboxConfig PodConfig, string PodId, string RunningId, string CreatedId, string CheckpointDir);

    [Fact]
    public async Task EveryRpcAnswersHostileRequestsWithAStatusAndLeavesNothingBehind()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CRISHIM_FUZZ_SEED"), out int chosen) ? chosen : DefaultSeed;
        output.WriteLine($"fuzz seed {seed} (CRISHIM_FUZZ_SEED={seed} replays this run)");
        var clock = Stopwatch.StartNew();
        var random = new Random(seed);

        await using var daemon = await Daemon.StartAsync();
        string sandbox = Path.Combine(daemon.Dirs.Base, "fuzz");
        var values = new HostileValues(random, sandbox, closedRegistry: $"127.0.0.1:{ClosedPort()}", registry: registry.Host);
        var messages = new HostileMessages(random, values);
        Directory.CreateDirectory(values.Sandbox);

        // A whole lifecycle before the baseline, so directories the daemon creates on first use count as its own.
        var warmUp = await CreateFixturesAsync(daemon, values.Sandbox, "warm-up");
        await daemon.ExecAsync(warmUp.RunningId, "true");
        await RemoveEverythingAsync(daemon);
        var baseline = StateSnapshot.Take(daemon);

        var invoker = daemon.Channel.CreateCallInvoker();
        var answers = new List<Answer>();
        var plan = AllRpcs.SelectMany(rpc => Enumerable.Repeat(rpc, RequestsPerBatch.GetValueOrDefault(rpc.Name, DefaultRequestsPerBatch))).ToList();
        int request = 0;
        for (int batch = 0; batch < Batches; batch++)
        {
            var fixtures = await CreateFixturesAsync(daemon, values.Sandbox, $"batch-{batch}");
            values.SetKnown([fixtures.PodId, fixtures.RunningId, fixtures.CreatedId], [Busybox, registry.DigestReference(TestImageNames.Busybox)]);
            var templates = Templates(fixtures);
            foreach (var rpc in plan.OrderBy(_ => random.Next()).ToList())
            {
                byte[] body = NextRequest(rpc, templates, messages, random);
                answers.Add(await CallAsync(invoker, rpc, body, request++));
            }
            Assert.False(daemon.HasExited, $"the daemon died in batch {batch}:\n{daemon.Output}");
            await daemon.Runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
            await RemoveEverythingAsync(daemon);
        }
        var after = StateSnapshot.Take(daemon);
        var leftovers = after.LeftoversSince(baseline).Concat(RemoveFuzzCgroups()).ToList();

        output.WriteLine($"{answers.Count} requests in {clock.Elapsed.TotalSeconds:F0} s ({answers.Sum(a => a.Took.TotalSeconds):F0} s in the calls, "
            + "the rest setting up and removing pods and containers); time in and answers of each RPC:");
        foreach (var rpc in answers.GroupBy(a => a.Rpc).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"  {rpc.Key,-28} {rpc.Sum(a => a.Took.TotalSeconds),5:F1} s  "
                + string.Join(" ", rpc.GroupBy(a => a.Code).OrderBy(g => g.Key).Select(g => $"{g.Key}={g.Count()}")));
        }
        var findings = answers.Where(a => !Acceptable(a)).ToList();
        foreach (var finding in findings)
        {
            output.WriteLine($"FINDING request #{finding.Request} {finding.Rpc}: {finding.Code} {Shorten(finding.Detail)}");
        }
        foreach (string leftover in leftovers) output.WriteLine($"LEFTOVER {leftover}");
        Assert.Equal(AllRpcs.Select(r => r.Name).Order(), answers.Select(a => a.Rpc).Distinct().Order());
        Assert.Empty(findings.Select(f => $"#{f.Request} {f.Rpc}: {f.Code} {Shorten(f.Detail)}"));
        Assert.Empty(leftovers);
    }

    private static bool Acceptable(Answer answer) => answer switch
    {
        _ when Expected.Contains(answer.Code) => true,
        // Checkpointing without a usable CRIU.
        { Code: StatusCode.Unimplemented } => answer.Rpc is "CheckpointContainer" or "CheckpointPod",
        // The event stream never ends by itself: the call's deadline ends it. Any other call that
        // ran into its deadline hung; one the daemon timed out itself obeyed the request's timeout.
        { Code: StatusCode.DeadlineExceeded } => answer.Rpc == "GetContainerEvents" || answer.Took < CallLimit(answer.Rpc) - TimeSpan.FromSeconds(1),
        _ => false,
    };

    private static TimeSpan CallLimit(string rpc) => rpc == "GetContainerEvents" ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromSeconds(30);

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;

    private byte[] NextRequest(MethodDescriptor rpc, Dictionary<string, IMessage> templates, HostileMessages messages, Random random)
    {
        var message = templates.TryGetValue(rpc.Name, out var template) && random.Next(2) == 0
            ? messages.Mutate(template)
            : messages.Create(rpc.InputType);
        byte[] body = message.ToByteArray();
        return random.Next(25) switch
        {
            0 or 1 => messages.Corrupt(body),
            2 => [.. body, .. OverLimitSuffix],
            _ => body,
        };
    }

    /// <summary>An unknown field that takes any request over the daemon's receive limit.</summary>
    private static readonly byte[] OverLimitSuffix = UnknownField(new byte[OverLimitBytes]);

    private static byte[] UnknownField(byte[] content)
    {
        var field = new MemoryStream();
        var output = new CodedOutputStream(field);
        output.WriteTag(15, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(content));
        output.Flush();
        return field.ToArray();
    }

    private static async Task<Answer> CallAsync(CallInvoker invoker, MethodDescriptor rpc, byte[] body, int request)
    {
        var method = new Method<byte[], byte[]>(rpc.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
            rpc.Service.FullName, rpc.Name, Raw, Raw);
        var clock = Stopwatch.StartNew();
        var deadline = DateTime.UtcNow + CallLimit(rpc.Name);
        try
        {
            if (rpc.IsServerStreaming)
            {
                using var call = invoker.AsyncServerStreamingCall(method, null, new CallOptions(deadline: deadline), body);
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                }
            }
            else
            {
                await invoker.AsyncUnaryCall(method, null, new CallOptions(deadline: deadline), body);
            }
            return new Answer(rpc.Name, StatusCode.OK, "", request, clock.Elapsed);
        }
        catch (RpcException e)
        {
            return new Answer(rpc.Name, e.StatusCode, e.Status.Detail, request, clock.Elapsed);
        }
    }

    /// <summary>Valid requests against the fixtures; the fuzz mutates a few fields of each.</summary>
    private Dictionary<string, IMessage> Templates(Fixtures fixtures)
    {
        var podConfig = fixtures.PodConfig.Clone();
        podConfig.Metadata.Name = "fuzz";
        podConfig.Metadata.Uid = "fuzz-uid";
        var templates = new Dictionary<string, IMessage>
        {
            ["RunPodSandbox"] = new RunPodSandboxRequest { Config = podConfig },
            ["CreateContainer"] = new CreateContainerRequest
            {
                PodSandboxId = fixtures.PodId, Config = Cri.Container("fuzz", Busybox, "true"), SandboxConfig = fixtures.PodConfig,
            },
            ["StartContainer"] = new StartContainerRequest { ContainerId = fixtures.CreatedId },
            ["StopContainer"] = new StopContainerRequest { ContainerId = fixtures.RunningId, Timeout = 1 },
            ["ExecSync"] = new ExecSyncRequest { ContainerId = fixtures.RunningId, Cmd = { "true" }, Timeout = 5 },
            ["Exec"] = new ExecRequest { ContainerId = fixtures.RunningId, Cmd = { "sh" }, Stdout = true },
            ["Attach"] = new AttachRequest { ContainerId = fixtures.RunningId, Stdout = true },
            ["PortForward"] = new PortForwardRequest { PodSandboxId = fixtures.PodId, Port = { 80 } },
            ["UpdateContainerResources"] = new UpdateContainerResourcesRequest
            {
                ContainerId = fixtures.RunningId,
                Linux = new LinuxContainerResources { CpuShares = 512, MemoryLimitInBytes = 256 << 20, CpuQuota = 50_000, CpuPeriod = 100_000 },
            },
            ["UpdatePodSandboxResources"] = new UpdatePodSandboxResourcesRequest
            {
                PodSandboxId = fixtures.PodId, Resources = new LinuxContainerResources { CpuShares = 512 },
            },
            ["CheckpointContainer"] = new CheckpointContainerRequest
            {
                ContainerId = fixtures.RunningId, Location = Path.Combine(fixtures.CheckpointDir, "container.tar"),
            },
            ["CheckpointPod"] = new CheckpointPodRequest
            {
                PodSandboxId = fixtures.PodId, OutputPath = fixtures.CheckpointDir, ContainerIds = { fixtures.RunningId },
            },
            ["PullImage"] = new PullImageRequest { Image = new ImageSpec { Image = Busybox } },
            ["UpdateRuntimeConfig"] = new UpdateRuntimeConfigRequest
            {
                RuntimeConfig = new RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = "10.99.0.0/24" } },
            },
            ["ContainerStatus"] = new ContainerStatusRequest { ContainerId = fixtures.RunningId, Verbose = true },
            ["PodSandboxStatus"] = new PodSandboxStatusRequest { PodSandboxId = fixtures.PodId, Verbose = true },
            ["ReopenContainerLog"] = new ReopenContainerLogRequest { ContainerId = fixtures.RunningId },
        };
        var unknown = templates.Keys.Except(AllRpcs.Select(r => r.Name)).ToList();
        Assert.True(unknown.Count == 0, "templates for RPCs that do not exist: " + string.Join(", ", unknown));
        return templates;
    }

    private async Task<Fixtures> CreateFixturesAsync(Daemon daemon, string sandbox, string name)
    {
        await daemon.PullAsync(Busybox);
        var podConfig = Cri.Pod($"fuzz-{name}", Directory.CreateDirectory(Path.Combine(sandbox, "logs", name)).FullName);
        string podId = await daemon.RunPodAsync(podConfig);
        // Ends at once on SIGTERM (sleep as pid 1 would ignore it), so a fuzzed StopContainer is quick.
        string running = await daemon.StartContainerAsync(podId, podConfig,
            Cri.Container("running", Busybox, "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"));
        string created = (await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = Cri.Container("created", Busybox, "true"), SandboxConfig = podConfig,
        })).ContainerId;
        string checkpointDir = Directory.CreateDirectory(Path.Combine(sandbox, "checkpoints", name)).FullName;
        return new Fixtures(podConfig, podId, running, created, checkpointDir);
    }

    /// <summary>Stops and removes every pod, container and image, as the kubelet would; each step must succeed.</summary>
    private static async Task RemoveEverythingAsync(Daemon daemon)
    {
        var runtime = daemon.Runtime;
        var deadline = () => DateTime.UtcNow.AddSeconds(60);
        foreach (var container in (await runtime.ListContainersAsync(new ListContainersRequest(), deadline: deadline())).Containers)
        {
            await runtime.StopContainerAsync(new StopContainerRequest { ContainerId = container.Id, Timeout = 0 }, deadline: deadline());
            await runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = container.Id }, deadline: deadline());
        }
        foreach (var pod in (await runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: deadline())).Items)
        {
            await runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id }, deadline: deadline());
            await runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id }, deadline: deadline());
        }
        foreach (var image in (await daemon.Images.ListImagesAsync(new ListImagesRequest(), deadline: deadline())).Images)
        {
            await daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = image.Id } }, deadline: deadline());
        }
    }

    /// <summary>
    /// Removes the cgroup parents fuzzed pods were given (all under <see cref="HostileValues.CgroupSandbox"/>),
    /// deepest first; a pod or container cgroup still there is a leftover and is named.
    /// </summary>
    private static List<string> RemoveFuzzCgroups()
    {
        var leftovers = new List<string>();
        foreach (string controller in Directory.GetDirectories("/sys/fs/cgroup"))
        {
            string root = controller + HostileValues.CgroupSandbox;
            if (!Directory.Exists(root)) continue;
            var dirs = Directory.GetDirectories(root, "*", SearchOption.AllDirectories).Append(root).OrderByDescending(dir => dir.Length);
            foreach (string dir in dirs)
            {
                if (Path.GetFileName(dir).StartsWith("crishim-", StringComparison.Ordinal))
                {
                    leftovers.Add("cgroup " + dir);
                    continue;
                }
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                    // The parent of a leftover, named above.
                }
            }
        }
        return leftovers;
    }

    /// <summary>A loopback port nothing listens on: pulls from it fail at once, offline.</summary>
    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
