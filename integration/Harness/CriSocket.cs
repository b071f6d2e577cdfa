using System.Diagnostics;

namespace CriShim.Integration.Harness;

/// <summary>Waiting for a CRI daemon the harness started (CriShim or containerd) to answer on its socket.</summary>
public static class CriSocket
{
    /// <summary>Returns once Version answers; throws with the daemon's output if it exits or <paramref name="limit"/> passes.</summary>
    public static async Task WaitUntilServingAsync(string name, Process process, string socketPath,
        RuntimeService.RuntimeServiceClient runtime, Func<string> output, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"{name} exited with {process.ExitCode}:\n{output()}");
            if (File.Exists(socketPath))
            {
                try
                {
                    await runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
                    return;
                }
                catch (RpcException) when (DateTime.UtcNow < deadline)
                {
                }
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{name} did not serve within {limit}:\n{output()}");
            await Task.Delay(100);
        }
    }
}
