using CriShim.TestImages;

namespace CriShim.Integration;

[Collection(RegistryCollection.Name)]
public class CdiDeviceTests(RegistryFixture registry)
{
    private string Busybox => registry.Reference(TestImageNames.Busybox);

    /// <summary>A vendor spec as a device plugin's installer writes it (YAML), in a directory only this daemon reads.</summary>
    private static string VendorSpec(string dataDir) => $"""
        cdiVersion: "0.6.0"
        kind: crishim.example/null
        containerEdits:
          env:
            - CDI_VENDOR=crishim-test
        devices:
          - name: "0"
            containerEdits:
              deviceNodes:
                - path: /dev/crishim-null0
                  hostPath: /dev/null
                  permissions: rw
              mounts:
                - hostPath: {dataDir}
                  containerPath: /vendor-data
                  options: [ro, nosuid, nodev]
        """;

    [Fact]
    public async Task AContainerSeesTheDeviceNodeMountAndEnvOfItsCdiDevice()
    {
        string specDir = Directory.CreateTempSubdirectory("crishim-cdi-").FullName;
        string dataDir = Directory.CreateTempSubdirectory("crishim-cdi-data-").FullName;
        File.WriteAllText(Path.Combine(dataDir, "firmware.bin"), "vendor firmware");
        File.WriteAllText(Path.Combine(specDir, "crishim-null.yaml"), VendorSpec(dataDir));
        try
        {
            await using var daemon = await Daemon.StartAsync(configToml: $"[cdi]\nspec_dirs = [\"{specDir}\"]\n");
            await daemon.PullAsync(Busybox);
            var podConfig = Cri.Pod("cdi");
            string podId = await daemon.RunPodAsync(podConfig);
            var config = Cri.Container("with-device", Busybox, "sleep", "3600");
            config.CDIDevices.Add(new CDIDevice { Name = "crishim.example/null=0" });
            string id = await daemon.StartContainerAsync(podId, podConfig, config);

            // busybox stat prints the major and minor in hex: /dev/null is 1:3.
            Assert.Equal("character special file 1:3", await daemon.ShAsync(id, "stat -c '%F %t:%T' /dev/crishim-null0"));
            Assert.Equal("written", await daemon.ShAsync(id, "echo data > /dev/crishim-null0 && echo written"));
            Assert.Equal("vendor firmware", await daemon.ShAsync(id, "cat /vendor-data/firmware.bin"));
            Assert.Equal("read-only", await daemon.ShAsync(id, "touch /vendor-data/x 2>/dev/null && echo writable || echo read-only"));
            Assert.Equal("crishim-test", await daemon.ShAsync(id, "echo $CDI_VENDOR"));

            // The same device through a device plugin's annotation; an unknown one is refused by name.
            var byAnnotation = Cri.Container("by-annotation", Busybox, "sleep", "3600");
            byAnnotation.Annotations["cdi.k8s.io/crishim-plugin"] = "crishim.example/null=0";
            string second = await daemon.StartContainerAsync(podId, podConfig, byAnnotation);
            Assert.Equal("1:3", await daemon.ShAsync(second, "stat -c '%t:%T' /dev/crishim-null0"));
            var unknown = Cri.Container("unknown", Busybox, "sleep", "3600");
            unknown.CDIDevices.Add(new CDIDevice { Name = "crishim.example/null=7" });
            var e = await Assert.ThrowsAsync<RpcException>(() => daemon.Runtime.CreateContainerAsync(
                new CreateContainerRequest { PodSandboxId = podId, Config = unknown, SandboxConfig = podConfig }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains("crishim.example/null=7", e.Status.Detail);
            await daemon.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId });
        }
        finally
        {
            Directory.Delete(specDir, true);
            Directory.Delete(dataDir, true);
        }
    }
}
