using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Cdi;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Cdi;

public sealed class CdiDevicesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cdi-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string JsonSpec = """
        {
          "cdiVersion": "0.6.0",
          "kind": "vendor.example/gpu",
          "containerEdits": { "env": ["VENDOR=1"], "hooks": [{ "hookName": "createContainer", "path": "/usr/bin/vendor-hook", "args": ["vendor-hook", "x"] }] },
          "devices": [
            { "name": "0", "containerEdits": {
                "deviceNodes": [{ "path": "/dev/gpu0", "type": "c", "major": 195, "minor": 0, "permissions": "rw" }],
                "mounts": [{ "hostPath": "/usr/lib/vendor", "containerPath": "/usr/lib/vendor", "options": ["ro"] }],
                "env": ["GPU=0"] } },
            { "name": "1", "containerEdits": { "env": ["GPU=1"], "additionalGids": [44] } }
          ]
        }
        """;

    private const string YamlSpec = """
        cdiVersion: "1.0.0"
        kind: vendor.example/nic
        devices:
          - name: eth-a
            containerEdits:
              deviceNodes:
                - path: /dev/nic-a
                  hostPath: /dev/null
              env:
                - NIC=a
        """;

    private static ContainerConfig Asking(params string[] names)
    {
        var config = new ContainerConfig();
        foreach (string name in names) config.CDIDevices.Add(new CDIDevice { Name = name });
        return config;
    }

    /// <summary>The parts of a ContainerSpecBuilder spec that CDI edits.</summary>
    private static JsonObject MinimalSpec() => JsonNode.Parse("""
        { "process": { "env": ["PATH=/bin", "GPU=none"], "user": { "uid": 0, "gid": 0, "additionalGids": [0] } },
          "mounts": [{ "destination": "/proc", "type": "proc", "source": "proc", "options": [] }],
          "linux": { "devices": [], "resources": { "devices": [{ "allow": false, "access": "rwm" }] } } }
        """)!.AsObject();

    [Fact]
    public void JsonAndYamlSpecsParse()
    {
        var json = CdiSpec.Parse(JsonSpec, "/etc/cdi/gpu.json");
        Assert.Equal("vendor.example/gpu", json.Kind);
        Assert.Equal(["0", "1"], json.Devices.Select(d => d.Name));
        var node = Assert.Single(json.Devices[0].Edits.DeviceNodes);
        Assert.Equal(('c', 195L, 0L, "rw"), (node.Type!.Value, node.Major!.Value, node.Minor!.Value, node.Permissions));
        Assert.Equal("/dev/gpu0", node.HostPath);
        Assert.Equal([44u], json.Devices[1].Edits.AdditionalGids);

        var yaml = CdiSpec.Parse(YamlSpec, "/etc/cdi/nic.yaml");
        Assert.Equal("1.0.0", yaml.Version);
        Assert.Equal("/dev/null", yaml.Devices[0].Edits.DeviceNodes[0].HostPath);
        Assert.Equal(["NIC=a"], yaml.Devices[0].Edits.Env);
    }

    [Theory]
    [InlineData("""{"cdiVersion":"9.9.9","kind":"a.b/c","devices":[{"name":"x"}]}""", "cdiVersion \"9.9.9\"")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"no-class","devices":[{"name":"x"}]}""", "kind \"no-class\"")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"bad name"}]}""", "device name \"bad name\"")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x"},{"name":"x"}]}""", "defined twice")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[]}""", "no device")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":{"netDevices":[{}]}}]}""", "netDevices is not supported")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":{"mounts":[{"hostPath":"rel","containerPath":"/m"}]}}]}""", "\"rel\" is not an absolute path")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":{"env":["=x"]}}]}""", "not KEY=value")]
    [InlineData("""{"cdiVersion":"0.6.0","kind":"a.b/c","devices":[{"name":"x","containerEdits":{"hooks":[{"hookName":"never","path":"/h"}]}}]}""", "hookName \"never\"")]
    public void BadSpecsAreRefusedSayingWhy(string text, string expected) =>
        Assert.Contains(expected, Assert.Throws<InvalidDataException>(() => CdiSpec.Parse(text, "/etc/cdi/x.json")).Message);

    [Fact]
    public void YamlAliasBombsAreCut()
    {
        var lines = new List<string> { "a0: &a0 [x, x, x, x, x, x, x, x, x, x]" };
        for (int i = 1; i < 6; i++) lines.Add($"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]");
        Assert.Contains("nodes", Assert.Throws<InvalidDataException>(() => CdiSpec.Parse(string.Join("\n", lines), "/etc/cdi/bomb.yaml")).Message);
    }

    [Fact]
    public void RequestedNamesComeFromTheFieldAndTheAnnotations()
    {
        var config = Asking("vendor.example/gpu=0");
        config.Annotations["cdi.k8s.io/plugin-b"] = "vendor.example/gpu=1, vendor.example/gpu=0";
        config.Annotations["cdi.k8s.io/plugin-a"] = "vendor.example/nic=eth-a";
        config.Annotations["other.io/x"] = "vendor.example/gpu=9";
        Assert.Equal(["vendor.example/gpu=0", "vendor.example/nic=eth-a", "vendor.example/gpu=1"], CdiDevices.Requested(config));
        Assert.Null(CdiDevices.Resolve(new ContainerConfig(), [_dir]));
    }

    [Fact]
    public void UnknownAndMalformedDevicesAreNamed()
    {
        File.WriteAllText(Path.Combine(_dir, "gpu.json"), JsonSpec);
        var unknown = Assert.Throws<InvalidRequestException>(() => CdiDevices.Resolve(Asking("vendor.example/gpu=0", "vendor.example/gpu=7", "other.example/x=y"), [_dir]));
        Assert.Contains("unresolvable CDI devices: vendor.example/gpu=7, other.example/x=y", unknown.Message);
        var malformed = Assert.Throws<InvalidRequestException>(() => CdiDevices.Resolve(Asking("gpu0"), [_dir]));
        Assert.Contains("gpu0", malformed.Message);
    }

    [Fact]
    public async Task AFifoNamedLikeASpecIsSkippedWithoutBlocking()
    {
        File.WriteAllText(Path.Combine(_dir, "gpu.json"), JsonSpec);
        string fifo = Path.Combine(_dir, "a.json");
        FileNodes.MakeFifo(fifo, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var resolving = Task.Run(() => CdiDevices.Resolve(Asking("vendor.example/gpu=0", "vendor.example/gpu=9"), [_dir]));
        try
        {
            // A blocked open fails the test instead of hanging it.
            var e = await Assert.ThrowsAsync<InvalidRequestException>(() => resolving.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains($"{fifo} is not a regular file", e.Message);
        }
        finally
        {
            // Releases an open stuck on the FIFO (it waits for a writer), so the run can end.
            if (!resolving.IsCompleted) using (File.OpenWrite(fifo)) { }
        }
    }

    [Fact]
    public void ALaterDirectoryOverridesAndBrokenOrOversizedFilesAreSkipped()
    {
        string etc = Directory.CreateDirectory(Path.Combine(_dir, "etc")).FullName;
        string run = Directory.CreateDirectory(Path.Combine(_dir, "run")).FullName;
        File.WriteAllText(Path.Combine(etc, "gpu.json"), JsonSpec);
        File.WriteAllText(Path.Combine(run, "gpu.json"), JsonSpec.Replace("GPU=1", "GPU=from-run"));
        File.WriteAllText(Path.Combine(run, "broken.yaml"), "cdiVersion: [");
        File.WriteAllText(Path.Combine(run, "huge.json"), new string(' ', CdiSpec.MaxFileBytes + 1));
        File.WriteAllText(Path.Combine(run, "ignored.txt"), "not a spec");

        var edits = CdiDevices.Resolve(Asking("vendor.example/gpu=1"), [etc, run])!;
        Assert.Equal(["VENDOR=1"], edits[0].Env);
        Assert.Equal(["GPU=from-run"], edits[1].Env);
        var unknown = Assert.Throws<InvalidRequestException>(() => CdiDevices.Resolve(Asking("vendor.example/gpu=5"), [etc, run]));
        Assert.Contains("broken.yaml", unknown.Message);
        Assert.Contains("huge.json", unknown.Message);
    }

    [Fact]
    public void EditsFromTheSpecAndTheDeviceMergeIntoTheOciSpec()
    {
        File.WriteAllText(Path.Combine(_dir, "gpu.json"), JsonSpec);
        File.WriteAllText(Path.Combine(_dir, "nic.yaml"), YamlSpec);
        var spec = MinimalSpec();
        CdiDevices.ApplyTo(spec, CdiDevices.Resolve(Asking("vendor.example/gpu=0", "vendor.example/gpu=1", "vendor.example/nic=eth-a"), [_dir])!);

        Assert.Equal(["PATH=/bin", "GPU=1", "VENDOR=1", "NIC=a"], spec["process"]!["env"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal(["0", "44"], spec["process"]!["user"]!["additionalGids"]!.AsArray().Select(g => g!.ToJsonString()));
        var devices = spec["linux"]!["devices"]!.AsArray();
        Assert.Equal(["/dev/gpu0", "/dev/nic-a"], devices.Select(d => d!["path"]!.GetValue<string>()));
        // The node without type and numbers takes them from its host path: /dev/null is c 1:3.
        Assert.Equal(("c", 1L, 3L), (devices[1]!["type"]!.GetValue<string>(), devices[1]!["major"]!.GetValue<long>(), devices[1]!["minor"]!.GetValue<long>()));
        var rules = spec["linux"]!["resources"]!["devices"]!.AsArray();
        Assert.Equal(3, rules.Count);
        Assert.Equal(("c", 195L, 0L, "rw"), (rules[1]!["type"]!.GetValue<string>(), rules[1]!["major"]!.GetValue<long>(), rules[1]!["minor"]!.GetValue<long>(),
            rules[1]!["access"]!.GetValue<string>()));
        var mount = spec["mounts"]!.AsArray()[1]!;
        Assert.Equal(("/usr/lib/vendor", "/usr/lib/vendor", "bind"), (mount["destination"]!.GetValue<string>(), mount["source"]!.GetValue<string>(), mount["type"]!.GetValue<string>()));
        Assert.Equal(["ro", "rbind"], mount["options"]!.AsArray().Select(o => o!.GetValue<string>()));
        var hook = Assert.Single(spec["hooks"]!["createContainer"]!.AsArray())!;
        Assert.Equal("/usr/bin/vendor-hook", hook["path"]!.GetValue<string>());
        Assert.Equal(["vendor-hook", "x"], hook["args"]!.AsArray().Select(a => a!.GetValue<string>()));
    }
}
