using CriShim.Runtime.Config;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Network;
using CriShim.Runtime.Pods;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Network;

/// <summary>The CNI protocol and libcni-style list execution, against shell-script plugins that log their calls.</summary>
public sealed class CniPodNetworkTests : IDisposable
{
    private readonly string _base = Directory.CreateTempSubdirectory("crishim-cni-net-").FullName;
    private string Bin => Path.Combine(_base, "bin");
    private string ConfDir => Path.Combine(_base, "net.d");
    private string CallLog => Path.Combine(Bin, "calls.log");

    private const string FakePlugin = """
        #!/bin/sh
        dir=$(dirname "$0")
        type=$(basename "$0")
        input=$(cat)
        printf '%s %s %s %s|%s\n' "$CNI_COMMAND" "$type" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_ARGS" >> "$dir/calls.log"
        printf '%s\n' "$input" > "$dir/stdin-$type-$CNI_COMMAND.json"
        if [ -e "$dir/fail-$type-$CNI_COMMAND" ]; then
          echo '{"cniVersion":"1.0.0","code":100,"msg":"'$type' says no","details":"'$CNI_COMMAND'"}'
          exit 1
        fi
        if [ -e "$dir/hang-$type" ]; then exec sleep 60; fi
        if [ "$CNI_COMMAND" = ADD ]; then
          echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'$CNI_NETNS'"}],"ips":[{"address":"10.9.0.2/24","interface":0}]}'
        fi
        exit 0

        """;

    public CniPodNetworkTests()
    {
        Directory.CreateDirectory(Bin);
        Directory.CreateDirectory(ConfDir);
        foreach (string name in new[] { "first", "second", "third" })
        {
            string path = Path.Combine(Bin, name);
            File.WriteAllText(path, FakePlugin);
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        }
    }

    public void Dispose() => Directory.Delete(_base, recursive: true);

    private CniPodNetwork Network(int timeoutSeconds = 10) =>
        new(new CniConfig { ConfDir = ConfDir, BinDirs = [Bin], PluginTimeoutSeconds = timeoutSeconds },
            new StateConfig { Root = Path.Combine(_base, "state"), RunRoot = Path.Combine(_base, "run") },
            new PodCidrStore(_base), NullLogger<CniPodNetwork>.Instance);

    private void WriteList(params string[] plugins) =>
        File.WriteAllText(Path.Combine(ConfDir, "10-test.conflist"),
            $$"""{ "cniVersion": "1.0.0", "name": "test", "plugins": [ {{string.Join(", ", plugins.Select(p => $$"""{ "type": "{{p}}", "capabilities": { "portMappings": true } }"""))}} ] }""");

    private PodSandboxRecord Pod(string id = "pod1")
    {
        var config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "web", Namespace = "ns", Uid = "uid-1" } };
        config.PortMappings.Add(new PortMapping { ContainerPort = 80, HostPort = 8080 });
        string netns = Path.Combine(_base, "netns-" + id);
        File.WriteAllText(netns, ""); // a plain file: DEL sees it is not a live namespace
        return new PodSandboxRecord { Id = id, Config = config.ToByteArray(), RuntimeHandler = "runc", CreatedAtNanos = 1, NetNsPath = netns };
    }

    private string[] Calls() => File.Exists(CallLog) ? File.ReadAllLines(CallLog) : [];

    [Fact]
    public async Task AddRunsInOrderAndDelInReverseWithPrevResultEvenAfterARestart()
    {
        WriteList("first", "second");
        var pod = Pod();
        using (var network = Network())
        {
            Assert.True(network.Readiness().Status);
            Assert.Equal(["10.9.0.2"], await network.AttachAsync(pod, CancellationToken.None));
        }
        string args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=uid-1";
        Assert.Equal([$"ADD first pod1 {pod.NetNsPath}|{args}", $"ADD second pod1 {pod.NetNsPath}|{args}"], Calls());
        string firstStdin = File.ReadAllText(Path.Combine(Bin, "stdin-first-ADD.json"));
        Assert.DoesNotContain("prevResult", firstStdin);
        Assert.Contains("\"name\":\"test\"", firstStdin);
        Assert.Contains("\"runtimeConfig\":{\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]}", firstStdin);
        Assert.Contains("\"prevResult\":{\"cniVersion\":\"1.0.0\"", File.ReadAllText(Path.Combine(Bin, "stdin-second-ADD.json")));

        // A new instance (a daemon restart) whose config has since vanished still tears the pod down from the cache.
        File.Delete(Path.Combine(ConfDir, "10-test.conflist"));
        File.Delete(CallLog);
        using (var restarted = Network())
        {
            Assert.False(restarted.Readiness().Status);
            await restarted.DetachAsync(pod, CancellationToken.None);
            Assert.Equal([$"DEL second pod1 |{args}", $"DEL first pod1 |{args}"], Calls());
            Assert.Contains("\"prevResult\":{\"cniVersion\":\"1.0.0\"", File.ReadAllText(Path.Combine(Bin, "stdin-first-DEL.json")));
            Assert.Empty(restarted.Cache.ContainerIds());
            // DEL is idempotent: nothing cached, nothing to do.
            await restarted.DetachAsync(pod, CancellationToken.None);
            Assert.Equal(2, Calls().Length);
        }
    }

    [Fact]
    public async Task AFailedAddIsUndoneForThePluginsItReachedAndCarriesThePluginsMessage()
    {
        WriteList("first", "second", "third");
        File.WriteAllText(Path.Combine(Bin, "fail-second-ADD"), "");
        using var network = Network();
        var e = await Assert.ThrowsAsync<CniPluginException>(() => network.AttachAsync(Pod(), CancellationToken.None));
        Assert.Equal("CNI plugin second ADD on network \"test\" failed: second says no (ADD) [code 100: plugin-specific error]", e.Message);
        Assert.Equal(["ADD first", "ADD second", "DEL second", "DEL first"], Calls().Select(c => string.Join(' ', c.Split(' ').Take(2))));
        Assert.Empty(network.Cache.ContainerIds());
    }

    [Fact]
    public async Task AFailedCleanupKeepsTheCacheSoALaterDetachRetries()
    {
        WriteList("first", "second");
        File.WriteAllText(Path.Combine(Bin, "fail-second-ADD"), "");
        File.WriteAllText(Path.Combine(Bin, "fail-first-DEL"), "");
        using var network = Network();
        var pod = Pod();
        await Assert.ThrowsAsync<CniPluginException>(() => network.AttachAsync(pod, CancellationToken.None));
        Assert.Equal(["pod1"], network.Cache.ContainerIds());

        var e = await Assert.ThrowsAsync<CniPluginException>(() => network.DetachAsync(pod, CancellationToken.None));
        Assert.Contains("first says no (DEL)", e.Message);
        File.Delete(Path.Combine(Bin, "fail-first-DEL"));
        await network.DetachAsync(pod, CancellationToken.None);
        Assert.Empty(network.Cache.ContainerIds());
    }

    [Fact]
    public async Task AHangingPluginIsKilledAtTheTimeout()
    {
        WriteList("first");
        File.WriteAllText(Path.Combine(Bin, "hang-first"), "");
        using var network = Network(timeoutSeconds: 1);
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<CniPluginTimeoutException>(() => network.AttachAsync(Pod(), CancellationToken.None));
        Assert.Equal("CNI plugin first ADD on network \"test\" did not finish within 1 s and was killed", e.Message);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task ReadinessFollowsTheConfDirAndAttachRefusesWhenNotReady()
    {
        using var network = Network();
        var none = network.Readiness();
        Assert.False(none.Status);
        Assert.Equal("NetworkPluginNotReady", none.Reason);
        Assert.Equal($"no network config found in {ConfDir}", none.Message);
        var e = await Assert.ThrowsAsync<WrongStateException>(() => network.AttachAsync(Pod(), CancellationToken.None));
        Assert.Equal($"pod network is not ready: no network config found in {ConfDir}", e.Message);

        WriteList("first", "missing");
        Assert.Equal($"10-test.conflist: plugin 'missing' not found in {Bin}", network.Readiness().Message);
        WriteList("first");
        Assert.True(network.Readiness().Status);
        File.Delete(Path.Combine(ConfDir, "10-test.conflist"));
        Assert.False(network.Readiness().Status);
    }

    [Fact]
    public async Task AResultWithoutAnIpIsAnErrorAndIsUndone()
    {
        File.WriteAllText(Path.Combine(Bin, "noip"), "#!/bin/sh\ncat > /dev/null\necho \"$CNI_COMMAND\" >> \"$(dirname \"$0\")/calls.log\"\n[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'\nexit 0\n");
        File.SetUnixFileMode(Path.Combine(Bin, "noip"), (UnixFileMode)0b111_101_101);
        WriteList("noip");
        using var network = Network();
        var e = await Assert.ThrowsAsync<CniPluginException>(() => network.AttachAsync(Pod(), CancellationToken.None));
        Assert.Contains("gives the pod no IP address", e.Message);
        Assert.Equal(["ADD", "DEL"], Calls());
        Assert.Empty(network.Cache.ContainerIds());
    }
}
