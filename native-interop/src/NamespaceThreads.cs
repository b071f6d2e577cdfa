namespace CriShim.NativeInterop;

/// <summary>
/// Runs work inside another network namespace on a dedicated, short-lived thread, so no pooled
/// thread ever leaves the daemon's own namespace. Sockets created there stay in that namespace.
/// </summary>
public static class NamespaceThreads
{
    public static Task<T> RunInNetworkNamespaceAsync<T>(string namespacePath, Func<T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (var ns = File.OpenHandle(namespacePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                {
                    Namespaces.Enter(ns, NamespaceKind.Network);
                }
                result.SetResult(work());
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "netns-worker",
        };
        thread.Start();
        return result.Task;
    }
}
