using Google.Protobuf;

namespace CriShim.Integration.Harness;

/// <summary>Builders and waits shared by the pod and container tests.</summary>
public static class Cri
{
    public static PodSandboxConfig Pod(string name, string? logDirectory = null)
    {
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = name, Namespace = "crishim-it", Uid = Guid.NewGuid().ToString(), Attempt = 0 },
            Hostname = name,
            LogDirectory = logDirectory ?? Directory.CreateTempSubdirectory("crishim-logs-").FullName,
            Linux = new LinuxPodSandboxConfig(),
        };
        config.Labels.Add("test", name);
        return config;
    }

    public static ContainerConfig Container(string name, string image, params string[] command)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name },
            Image = new ImageSpec { Image = image },
            LogPath = $"{name}.log",
            Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext(), Resources = new LinuxContainerResources() },
        };
        config.Command.Add(command);
        config.Labels.Add("container", name);
        return config;
    }

    public static async Task<string> RunPodAsync(this Daemon daemon, PodSandboxConfig config, string handler = "")
    {
        var response = await daemon.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = handler });
        return response.PodSandboxId;
    }

    public static async Task<string> StartContainerAsync(this Daemon daemon, string podId, PodSandboxConfig podConfig, ContainerConfig config)
    {
        var created = await daemon.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId, Config = config, SandboxConfig = podConfig,
        });
        await daemon.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId });
        return created.ContainerId;
    }

    public static async Task<ContainerStatus> StatusAsync(this Daemon daemon, string containerId) =>
        (await daemon.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = containerId })).Status;

    public static async Task<ExecSyncResponse> ExecAsync(this Daemon daemon, string containerId, params string[] command)
    {
        var request = new ExecSyncRequest { ContainerId = containerId, Timeout = 30 };
        request.Cmd.Add(command);
        return await daemon.Runtime.ExecSyncAsync(request);
    }

    /// <summary>Runs a shell command in the container; returns stdout, failing the test on a non-zero exit.</summary>
    public static async Task<string> ShAsync(this Daemon daemon, string containerId, string script)
    {
        var result = await daemon.ExecAsync(containerId, "sh", "-c", script);
        Assert.True(result.ExitCode == 0, $"`{script}` exited {result.ExitCode}: {result.Stderr.ToStringUtf8()}");
        return result.Stdout.ToStringUtf8().Trim();
    }

    public static async Task<ContainerStatus> WaitForExitAsync(this Daemon daemon, string containerId, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var status = await daemon.StatusAsync(containerId);
            if (status.State == ContainerState.ContainerExited) return status;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"container {containerId} still {status.State}");
            await Task.Delay(100);
        }
    }

    public static async Task PullAsync(this Daemon daemon, string reference) =>
        await daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = reference } });

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan limit, string what)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }

    public static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
