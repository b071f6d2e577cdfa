using System.Text.Json.Nodes;
using CriShim.Runtime.Network;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Network;

public class CniResultTests
{
    [Fact]
    public void ParsesA040ResultWithVersionFields()
    {
        var result = CniResult.Parse("""
            {
              "cniVersion": "0.4.0",
              "interfaces": [
                { "name": "cni0", "mac": "aa:bb:cc:dd:ee:01" },
                { "name": "veth1234", "mac": "aa:bb:cc:dd:ee:02" },
                { "name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x" }
              ],
              "ips": [
                { "version": "6", "address": "fd00::5/64", "gateway": "fd00::1", "interface": 2 },
                { "version": "4", "address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2 },
                { "version": "4", "address": "10.88.0.1/16", "interface": 0 }
              ],
              "routes": [ { "dst": "0.0.0.0/0" } ],
              "dns": {}
            }
            """);
        Assert.Equal("0.4.0", result.CniVersion);
        Assert.Equal(3, result.Interfaces.Count);
        Assert.Equal("/run/netns/x", result.Interfaces[2].Sandbox);
        Assert.Equal(16, result.Ips[1].PrefixLength);
        Assert.Equal("10.88.0.1", result.Ips[1].Gateway);
        // Only the pod's own interface, v4 first.
        Assert.Equal(["10.88.0.5", "fd00::5"], result.PodIps("eth0"));
    }

    [Fact]
    public void ParsesA100Result()
    {
        var result = CniResult.Parse("""
            {
              "cniVersion": "1.0.0",
              "interfaces": [ { "name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p" } ],
              "ips": [ { "address": "10.22.0.9/24", "gateway": "10.22.0.1", "interface": 0 } ]
            }
            """);
        Assert.Equal("1.0.0", result.CniVersion);
        Assert.Equal(["10.22.0.9"], result.PodIps("eth0"));
    }

    [Fact]
    public void WithoutInterfaceIndexesEveryNonLoopbackAddressCounts()
    {
        var result = CniResult.Parse("""
            { "cniVersion": "1.0.0", "ips": [ { "address": "127.0.0.1/8" }, { "address": "2001:db8::2/64" }, { "address": "192.168.5.2/24" }, { "address": "192.168.5.2/24" } ] }
            """);
        Assert.Equal(["192.168.5.2", "2001:db8::2"], result.PodIps("eth0"));
    }

    [Fact]
    public void ParsesLegacy020Results()
    {
        var result = CniResult.Parse("""{ "cniVersion": "0.2.0", "ip4": { "ip": "10.0.0.7/24", "gateway": "10.0.0.1" }, "ip6": { "ip": "fd00::7/64" } }""");
        Assert.Equal(["10.0.0.7", "fd00::7"], result.PodIps("eth0"));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1]")]
    [InlineData("""{ "cniVersion": "1.0.0", "ips": [ { "gateway": "10.0.0.1" } ] }""")]
    [InlineData("""{ "cniVersion": "1.0.0", "ips": [ { "address": "nonsense/24" } ] }""")]
    public void RejectsUnusableResults(string json) => Assert.Throws<FormatException>(() => CniResult.Parse(json));

    [Fact]
    public void ParsesCniErrors()
    {
        var error = CniError.TryParse("""{ "cniVersion": "1.0.0", "code": 7, "msg": "invalid subnet", "details": "10.0.0.0/33" }""");
        Assert.Equal(new CniError(7, "invalid subnet", "10.0.0.0/33"), error);
        Assert.Equal(new CniError(0, "oops", ""), CniError.TryParse("""{ "msg": "oops" }"""));
        Assert.Null(CniError.TryParse("panic: runtime error"));
        Assert.Null(CniError.TryParse(""));
        Assert.Null(CniError.TryParse("""{ "code": 1 }"""));
        Assert.Equal("invalid network config", CniError.CodeName(7));
    }

    [Fact]
    public void PluginErrorsCarryThePluginsOwnMessage()
    {
        var e = new CniPluginException("bridge", CniCommand.Add, "pods", new CniError(11, "address in use", "10.0.0.2"));
        Assert.Equal("CNI plugin bridge ADD on network \"pods\" failed: address in use (10.0.0.2) [code 11: try again later]", e.Message);
        Assert.Equal("address in use (10.0.0.2) [code 11: try again later]", e.Detail);
    }
}

public class CniRuntimeArgsTests
{
    private static PodSandboxConfig Pod()
    {
        var pod = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "web", Namespace = "shop", Uid = "1234-5678", Attempt = 1 },
        };
        pod.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = 8080, HostIp = "127.0.0.1" });
        pod.PortMappings.Add(new PortMapping { Protocol = Protocol.Udp, ContainerPort = 53, HostPort = 5353 });
        pod.PortMappings.Add(new PortMapping { Protocol = Protocol.Sctp, ContainerPort = 9, HostPort = 9999 });
        pod.PortMappings.Add(new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 443 }); // no host port: not mapped
        return pod;
    }

    [Fact]
    public void BuildsCniArgs()
    {
        Assert.Equal("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=1234-5678",
            CniRuntimeArgs.CniArgs(Pod().Metadata, "abc123"));
        Assert.Throws<InvalidRequestException>(() => CniRuntimeArgs.CniArgs(new PodSandboxMetadata { Name = "a;b", Namespace = "n", Uid = "u" }, "id"));
    }

    [Fact]
    public void BuildsPortMappingsAsPortmapWantsThem()
    {
        var args = CniRuntimeArgs.CapabilityArgs(Pod(), "");
        Assert.Equal(
            """[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"},{"hostPort":5353,"containerPort":53,"protocol":"udp"},{"hostPort":9999,"containerPort":9,"protocol":"sctp"}]""",
            args["portMappings"]!.ToJsonString());
        Assert.False(args.ContainsKey("bandwidth"));
        Assert.False(args.ContainsKey("dns"));
        Assert.False(args.ContainsKey("ipRanges"));
    }

    [Fact]
    public void BuildsBandwidthDnsAndIpRanges()
    {
        var pod = Pod();
        pod.Annotations.Add(CniRuntimeArgs.IngressBandwidthAnnotation, "10M");
        pod.Annotations.Add(CniRuntimeArgs.EgressBandwidthAnnotation, "1Mi");
        pod.DnsConfig = new DNSConfig { Servers = { "10.96.0.10" }, Searches = { "shop.svc.cluster.local" }, Options = { "ndots:5" } };
        var args = CniRuntimeArgs.CapabilityArgs(pod, "10.244.1.0/24");
        Assert.Equal(10_000_000, args["bandwidth"]!["ingressRate"]!.GetValue<long>());
        Assert.Equal(1 << 20, args["bandwidth"]!["egressRate"]!.GetValue<long>());
        Assert.Equal(uint.MaxValue, args["bandwidth"]!["ingressBurst"]!.GetValue<uint>());
        Assert.Equal("""{"servers":["10.96.0.10"],"searches":["shop.svc.cluster.local"],"options":["ndots:5"]}""", args["dns"]!.ToJsonString());
        Assert.Equal("""[[{"subnet":"10.244.1.0/24"}]]""", args["ipRanges"]!.ToJsonString());
        Assert.Equal("10M", args[CniRuntimeArgs.PodAnnotationsCapability]![CniRuntimeArgs.IngressBandwidthAnnotation]!.GetValue<string>());
    }

    [Theory]
    [InlineData("100", 100)]
    [InlineData("1k", 1000)]
    [InlineData("2.5M", 2_500_000)]
    [InlineData("1G", 1_000_000_000)]
    [InlineData("1Ki", 1024)]
    [InlineData("3Gi", 3L << 30)]
    public void ParsesBandwidthQuantities(string quantity, long bits) =>
        Assert.Equal(bits, CniRuntimeArgs.BitsPerSecond("a", quantity));

    [Theory]
    [InlineData("fast")]
    [InlineData("")]
    [InlineData("-5M")]
    [InlineData("0")]
    public void RejectsBadBandwidthQuantities(string quantity) =>
        Assert.Throws<InvalidRequestException>(() => CniRuntimeArgs.BitsPerSecond("kubernetes.io/ingress-bandwidth", quantity));

    [Fact]
    public void PluginConfigInjectsNameVersionPrevResultAndOnlyDeclaredCapabilities()
    {
        var list = CniConfigLoader.Parse("""
            {
              "cniVersion": "1.0.0", "name": "pods",
              "plugins": [
                { "type": "bridge", "runtimeConfig": { "static": true } },
                { "type": "portmap", "capabilities": { "portMappings": true, "dns": false }, "snat": true },
                { "type": "bandwidth", "capabilities": { "bandwidth": true } }
              ]
            }
            """);
        var args = CniRuntimeArgs.CapabilityArgs(Pod(), "");
        var prev = new JsonObject { ["cniVersion"] = "1.0.0", ["ips"] = new JsonArray() };

        var bridge = CniRuntimeArgs.PluginConfig(list.Plugins[0], list.Name, list.CniVersion, null, args);
        Assert.Equal("pods", bridge["name"]!.GetValue<string>());
        Assert.Equal("1.0.0", bridge["cniVersion"]!.GetValue<string>());
        Assert.False(bridge.ContainsKey("prevResult"));
        Assert.Equal("""{"static":true}""", bridge["runtimeConfig"]!.ToJsonString()); // nothing to pass: left as written

        var portmap = CniRuntimeArgs.PluginConfig(list.Plugins[1], list.Name, list.CniVersion, prev, args);
        Assert.Equal(prev.ToJsonString(), portmap["prevResult"]!.ToJsonString());
        var runtimeConfig = portmap["runtimeConfig"]!.AsObject();
        Assert.Equal(["portMappings"], runtimeConfig.Select(kv => kv.Key));
        Assert.True(portmap["snat"]!.GetValue<bool>());

        // Declared, but the pod asks for no bandwidth: no runtimeConfig at all.
        var bandwidth = CniRuntimeArgs.PluginConfig(list.Plugins[2], list.Name, list.CniVersion, prev, args);
        Assert.False(bandwidth.ContainsKey("runtimeConfig"));
        // The parsed list is not modified by building configs.
        Assert.False(list.Plugins[1].Raw.ContainsKey("prevResult"));
    }

    [Fact]
    public void CniEnvironmentFollowsTheSpec()
    {
        var env = new CniInvocation(CniCommand.Del, "pod1", "/run/netns/pod1", "eth0", "IgnoreUnknown=1", ["/a", "/b"]).Environment();
        Assert.Equal("DEL", env["CNI_COMMAND"]);
        Assert.Equal("pod1", env["CNI_CONTAINERID"]);
        Assert.Equal("/run/netns/pod1", env["CNI_NETNS"]);
        Assert.Equal("eth0", env["CNI_IFNAME"]);
        Assert.Equal("IgnoreUnknown=1", env["CNI_ARGS"]);
        Assert.Equal("/a:/b", env["CNI_PATH"]);
    }
}
