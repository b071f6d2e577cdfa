using CriShim.Runtime.Network;

namespace CriShim.Runtime.Tests.Network;

public sealed class CniConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-cni-conf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string BridgeList = """
        {
          "cniVersion": "1.0.0",
          "name": "pods",
          "plugins": [
            { "type": "bridge", "bridge": "cni0", "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.1.0.0/16" }]] } },
            { "type": "portmap", "capabilities": { "portMappings": true, "bandwidth": false } }
          ]
        }
        """;

    [Fact]
    public void ParsesAConflist()
    {
        var list = CniConfigLoader.Parse(BridgeList, "/x/10-pods.conflist");
        Assert.Equal("pods", list.Name);
        Assert.Equal("1.0.0", list.CniVersion);
        Assert.Equal(["bridge", "portmap"], list.Plugins.Select(p => p.Type));
        Assert.Empty(list.Plugins[0].Capabilities);
        Assert.Equal(["portMappings"], list.Plugins[1].Capabilities);
        Assert.Equal("cni0", list.Plugins[0].Raw["bridge"]!.GetValue<string>());
        Assert.Equal("/x/10-pods.conflist", list.SourceFile);
    }

    [Fact]
    public void WrapsASinglePluginConfAsALibcniDoes()
    {
        var list = CniConfigLoader.Parse("""{ "cniVersion": "0.4.0", "name": "single", "type": "ptp", "mtu": 1400 }""");
        Assert.Equal("single", list.Name);
        Assert.Equal("0.4.0", list.CniVersion);
        var plugin = Assert.Single(list.Plugins);
        Assert.Equal("ptp", plugin.Type);
        Assert.False(plugin.Raw.ContainsKey("name"));
        Assert.Equal(1400, plugin.Raw["mtu"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("{ nope", "invalid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("""{ "cniVersion": "1.0.0", "plugins": [ { "type": "bridge" } ] }""", "no \"name\"")]
    [InlineData("""{ "name": "n", "plugins": [ { "type": "bridge" } ] }""", "no \"cniVersion\"")]
    [InlineData("""{ "cniVersion": "1.1.0", "name": "n", "plugins": [ { "type": "bridge" } ] }""", "cniVersion 1.1.0 is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0)")]
    [InlineData("""{ "cniVersion": "1.0.0", "name": "n", "plugins": [] }""", "\"plugins\" must be a non-empty list")]
    [InlineData("""{ "cniVersion": "1.0.0", "name": "n", "plugins": [ { "bridge": "x" } ] }""", "plugin 0 has no \"type\"")]
    [InlineData("""{ "cniVersion": "1.0.0", "name": "n", "plugins": [ { "type": "../../bin/sh" } ] }""", "is not a plain name")]
    [InlineData("""{ "cniVersion": "1.0.0", "name": "n" }""", "neither \"plugins\" nor \"type\"")]
    public void RejectsInvalidConfigs(string json, string expected)
    {
        var e = Assert.Throws<CniConfigException>(() => CniConfigLoader.Parse(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void SelectsTheLexicallyFirstConfigFile()
    {
        File.WriteAllText(Path.Combine(_dir, "20-later.conflist"), BridgeList.Replace("\"pods\"", "\"later\""));
        File.WriteAllText(Path.Combine(_dir, "10-first.conf"), """{ "cniVersion": "1.0.0", "name": "first", "type": "bridge" }""");
        File.WriteAllText(Path.Combine(_dir, "00-ignored.txt"), "not a config");
        File.WriteAllText(Path.Combine(_dir, ".05-hidden.conflist"), "{");
        var selection = CniConfigLoader.Select(_dir, "");
        Assert.Null(selection.Reason);
        Assert.Equal("first", selection.Network!.Name);
        Assert.Equal(Path.Combine(_dir, "10-first.conf"), selection.Network.SourceFile);
    }

    [Fact]
    public void NoConfigSaysWhereItLooked()
    {
        Assert.Equal($"no network config found in {_dir}", CniConfigLoader.Select(_dir, "").Reason);
        string missing = Path.Combine(_dir, "nope");
        Assert.Equal($"no network config found in {missing}", CniConfigLoader.Select(missing, "").Reason);
    }

    [Fact]
    public void AnInvalidFirstFileMakesTheNetworkNotReadyNamingIt()
    {
        File.WriteAllText(Path.Combine(_dir, "10-bad.conflist"), """{ "cniVersion": "1.0.0", "name": "bad", "plugins": [] }""");
        File.WriteAllText(Path.Combine(_dir, "20-good.conflist"), BridgeList);
        var selection = CniConfigLoader.Select(_dir, "");
        Assert.Null(selection.Network);
        Assert.Equal("10-bad.conflist: network \"bad\": \"plugins\" must be a non-empty list", selection.Reason);
    }

    [Fact]
    public void ThePodCidrPlaceholderIsFilledOrReported()
    {
        File.WriteAllText(Path.Combine(_dir, "10-cidr.conflist"), BridgeList.Replace("10.1.0.0/16", "{{.PodCIDR}}"));
        var waiting = CniConfigLoader.Select(_dir, "");
        Assert.Null(waiting.Network);
        Assert.Contains("10-cidr.conflist: uses {{.PodCIDR}} but no pod CIDR", waiting.Reason);

        var filled = CniConfigLoader.Select(_dir, "10.244.3.0/24");
        Assert.Contains("10.244.3.0/24", filled.Network!.Plugins[0].Raw.ToJsonString());
    }

    [Fact]
    public void MissingPluginsAreNamedWithTheSearchPath()
    {
        string bin = Directory.CreateDirectory(Path.Combine(_dir, "bin")).FullName;
        File.WriteAllText(Path.Combine(bin, "bridge"), "");
        var list = CniConfigLoader.Parse(BridgeList, Path.Combine(_dir, "10-pods.conflist"));
        Assert.Equal($"10-pods.conflist: plugin 'portmap' not found in {bin}, /nonexistent", CniConfigLoader.MissingPlugin(list, [bin, "/nonexistent"]));
        File.WriteAllText(Path.Combine(bin, "portmap"), "");
        Assert.Null(CniConfigLoader.MissingPlugin(list, [bin, "/nonexistent"]));
        Assert.Equal(Path.Combine(bin, "bridge"), CniConfigLoader.FindPlugin("bridge", ["/nonexistent", bin]));
    }
}
