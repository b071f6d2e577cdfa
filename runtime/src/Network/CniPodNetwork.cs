using System.Text.Json.Nodes;
using CriShim.NativeInterop;
using CriShim.Runtime.Config;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Diagnostics;
using CriShim.Runtime.Pods;
using Runtime.V1;

namespace CriShim.Runtime.Network;

/// <summary>
/// Pod networking through CNI plugins, as libcni runs a config list: ADD through the plugins in order
/// (each gets the previous one's result), DEL in reverse with the cached result as prevResult. The
/// config comes from the first file of cni.conf_dir, re-checked on every call and on a watcher's events,
/// so a config that appears, changes or vanishes is seen without a restart. What ADD used is cached
/// under state.root, so DEL works after a restart, after the config file changed, and after a half-done ADD.
/// </summary>
public sealed class CniPodNetwork : IPodNetwork, IDisposable
{
    public const string IfName = "eth0";
    public const string NotReadyReason = "NetworkPluginNotReady";

    private readonly CniConfig _cni;
    private readonly PodCidrStore _podCidr;
    private readonly ILogger<CniPodNetwork> _logger;
    private readonly TimeSpan _timeout;
    private readonly Lock _gate = new();
    private FileSystemWatcher? _watcher;
    private string _fingerprint = "";
    private bool _dirty = true;
    private CniConfigSelection _selection = CniConfigSelection.Problem("not loaded");
    private string _lastReported = "";

    public CniPodNetwork(CniConfig cni, StateConfig state, PodCidrStore podCidr, ILogger<CniPodNetwork> logger)
    {
        _cni = cni;
        _podCidr = podCidr;
        _logger = logger;
        _timeout = TimeSpan.FromSeconds(cni.PluginTimeoutSeconds);
        Cache = new CniResultCache(Path.Combine(state.Root, "cni", "results"));
        Current();
    }

    public CniResultCache Cache { get; }

    /// <summary>The network to use, or why there is none: the first config file, parsed, with every plugin installed.</summary>
    public CniConfigSelection Current()
    {
        lock (_gate)
        {
            EnsureWatcher();
            string podCidr = _podCidr.PodCidr;
            string fingerprint = Fingerprint(podCidr);
            if (_dirty || fingerprint != _fingerprint)
            {
                _dirty = false;
                _fingerprint = fingerprint;
                _selection = CniConfigLoader.Select(_cni.ConfDir, podCidr);
            }
            var selection = _selection;
            // Plugins are looked up every time: installing one needs no config change to be noticed.
            if (selection.Network is { } network && CniConfigLoader.MissingPlugin(network, _cni.BinDirs) is { } missing)
            {
                selection = CniConfigSelection.Problem(missing);
            }
            Report(selection);
            return selection;
        }
    }

    private string Fingerprint(string podCidr)
    {
        var parts = new List<string> { podCidr };
        try
        {
            foreach (string file in CniConfigLoader.ConfigFiles(_cni.ConfDir))
            {
                var info = new FileInfo(file);
                parts.Add($"{info.Name}:{info.LastWriteTimeUtc.Ticks}:{info.Length}");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            parts.Add(e.Message);
        }
        return string.Join('|', parts);
    }

    private void EnsureWatcher()
    {
        if (_watcher is not null || !Directory.Exists(_cni.ConfDir)) return;
        try
        {
            var watcher = new FileSystemWatcher(_cni.ConfDir)
            {
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                IncludeSubdirectories = false,
            };
            watcher.Created += OnChanged;
            watcher.Changed += OnChanged;
            watcher.Deleted += OnChanged;
            watcher.Renamed += OnChanged;
            watcher.Error += (_, e) =>
            {
                lock (_gate) _dirty = true;
                _logger.LogWarning("watching {Dir} failed: {Error}; re-reading on every call", _cni.ConfDir, e.GetException().Message);
            };
            watcher.EnableRaisingEvents = true;
            _watcher = watcher;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            _logger.LogDebug("cannot watch {Dir}: {Error}", _cni.ConfDir, e.Message);
        }
    }

    private void OnChanged(object sender, FileSystemEventArgs e)
    {
        lock (_gate) _dirty = true;
        // Re-evaluate now so the log shows the transition when it happens, not at the next Status.
        ThreadPool.QueueUserWorkItem(_ =>
        {
            try
            {
                Current();
            }
            catch (Exception error)
            {
                _logger.LogWarning("re-reading CNI config after a change failed: {Error}", error.Message);
            }
        });
    }

    private void Report(CniConfigSelection selection)
    {
        string text = selection.Network is { } n ? $"ready:{n.SourceFile}:{n.Name}" : $"not-ready:{selection.Reason}";
        if (text == _lastReported) return;
        _lastReported = text;
        if (selection.Network is { } network)
        {
            _logger.LogInformation("CNI network \"{Name}\" (cniVersion {Version}, plugins {Plugins}) from {File} is ready",
                network.Name, network.CniVersion, string.Join(", ", network.Plugins.Select(p => p.Type)), network.SourceFile);
        }
        else
        {
            _logger.LogWarning("pod network not ready: {Reason}", selection.Reason);
        }
    }

    public RuntimeCondition Readiness()
    {
        var selection = Current();
        return selection.Network is not null
            ? new RuntimeCondition { Type = "NetworkReady", Status = true }
            : new RuntimeCondition { Type = "NetworkReady", Status = false, Reason = NotReadyReason, Message = selection.Reason ?? "" };
    }

    public async Task<IReadOnlyList<string>> AttachAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var selection = Current();
        if (selection.Network is not { } network)
        {
            throw new WrongStateException($"pod network is not ready: {selection.Reason}");
        }
        var config = pod.ConfigMessage;
        var entry = new CniCacheEntry
        {
            ContainerId = pod.Id,
            IfName = IfName,
            NetNs = pod.NetNsPath,
            CniArgs = CniRuntimeArgs.CniArgs(config.Metadata, pod.Id),
            Network = network,
            CapabilityArgs = CniRuntimeArgs.CapabilityArgs(config, _podCidr.PodCidr),
        };
        // Written first: whatever part of the ADD runs, DEL can undo it, even after a crash.
        Cache.Save(entry);
        var progress = new AddProgress();
        try
        {
            var result = await AddAsync(entry, progress, cancellationToken);
            var ips = result.PodIps(IfName);
            if (ips.Count == 0)
            {
                throw new CniPluginException(network.Plugins[^1].Type, CniCommand.Add, network.Name,
                    $"the result gives the pod no IP address: {result.Raw.ToJsonString()}");
            }
            entry.Result = result.Raw;
            Cache.Save(entry);
            _logger.LogInformation("pod {Id} attached to CNI network \"{Network}\": {Ips}", pod.Id, network.Name, string.Join(", ", ips));
            return ips;
        }
        catch (Exception addError)
        {
            _logger.LogWarning("CNI ADD for pod {Id} failed, undoing it: {Error}", pod.Id, addError.Message);
            // Plugins the ADD never reached have nothing to undo.
            entry.PluginsStarted = progress.Started;
            try
            {
                await DeleteAsync(entry, addError as CniPluginException, progress.Started - 1, CancellationToken.None);
                Cache.Delete(pod.Id);
            }
            catch (Exception deleteError)
            {
                // The cache entry stays: DetachAsync (teardown, or StopPodSandbox later) retries the DEL.
                Cache.Save(entry);
                _logger.LogError("CNI DEL after the failed ADD for pod {Id} failed too: {Error}", pod.Id, deleteError.Message);
            }
            throw;
        }
    }

    private sealed class AddProgress
    {
        /// <summary>How many plugins of the list the ADD has invoked so far.</summary>
        public int Started { get; set; }
    }

    public async Task DetachAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var entry = Cache.Load(pod.Id);
        if (entry is null) return; // never attached, or already detached
        await DeleteAsync(entry, null, -1, cancellationToken);
        Cache.Delete(pod.Id);
        _logger.LogInformation("pod {Id} detached from CNI network \"{Network}\"", pod.Id, entry.Network.Name);
    }

    private async Task<CniResult> AddAsync(CniCacheEntry entry, AddProgress progress, CancellationToken cancellationToken)
    {
        using var timing = PhaseLog.Time("CNI ADD", entry.ContainerId);
        var network = entry.Network;
        var invocation = new CniInvocation(CniCommand.Add, entry.ContainerId, entry.NetNs, entry.IfName, entry.CniArgs, _cni.BinDirs);
        JsonObject? previous = null;
        foreach (var plugin in network.Plugins)
        {
            var stdin = CniRuntimeArgs.PluginConfig(plugin, network.Name, network.CniVersion, previous, entry.CapabilityArgs);
            progress.Started++;
            string output = await Plugin(plugin.Type, CniCommand.Add, network.Name).ExecAsync(invocation, network.Name, stdin.ToJsonString(), cancellationToken);
            if (output.Trim().Length == 0)
            {
                if (previous is null) throw new CniPluginException(plugin.Type, CniCommand.Add, network.Name, "returned no result");
                continue; // a plugin that prints nothing leaves the chain's result as it was
            }
            try
            {
                previous = CniResult.Parse(output).Raw;
            }
            catch (FormatException e)
            {
                throw new CniPluginException(plugin.Type, CniCommand.Add, network.Name, $"returned an unusable result ({e.Message}): {output.Trim()}");
            }
        }
        return CniResult.Parse(previous!);
    }

    /// <summary>
    /// DEL through the plugins in reverse (all of them, or those a failed ADD reached); every one is tried and
    /// the first failure is reported after. A plugin whose DEL fails exactly as its ADD just did (say, a config
    /// it cannot decode) did nothing on ADD, so that failure does not block the clean-up.
    /// </summary>
    private async Task DeleteAsync(CniCacheEntry entry, CniPluginException? addFailure, int failedIndex, CancellationToken cancellationToken)
    {
        using var timing = PhaseLog.Time("CNI DEL", entry.ContainerId);
        var network = entry.Network;
        // A namespace that is gone (a reboot, a half-done teardown) is passed as none; plugins still release IPs and host state.
        string netns = entry.NetNs.Length > 0 && NetworkNamespaces.IsPinned(entry.NetNs) ? entry.NetNs : "";
        var invocation = new CniInvocation(CniCommand.Del, entry.ContainerId, netns, entry.IfName, entry.CniArgs, _cni.BinDirs);
        // libcni passes the cached result on DEL from 0.4.0 on.
        var prevResult = SupportsPrevResultOnDel(network.CniVersion) ? entry.Result : null;
        int count = Math.Clamp(entry.PluginsStarted ?? network.Plugins.Count, 0, network.Plugins.Count);
        Exception? firstFailure = null;
        for (int i = count - 1; i >= 0; i--)
        {
            var plugin = network.Plugins[i];
            try
            {
                var stdin = CniRuntimeArgs.PluginConfig(plugin, network.Name, network.CniVersion, prevResult, entry.CapabilityArgs);
                await Plugin(plugin.Type, CniCommand.Del, network.Name).ExecAsync(invocation, network.Name, stdin.ToJsonString(), cancellationToken);
            }
            catch (CniPluginException e) when (i == failedIndex && addFailure is not null && addFailure.Plugin == plugin.Type && addFailure.Detail == e.Detail)
            {
                _logger.LogDebug("CNI DEL for pod {Id}: {Plugin} fails as its ADD did, so it set nothing up: {Error}", entry.ContainerId, plugin.Type, e.Detail);
            }
            catch (Exception e) when (e is CniPluginException or TimeoutException)
            {
                _logger.LogWarning("CNI DEL for pod {Id}: {Error}", entry.ContainerId, e.Message);
                firstFailure ??= e;
            }
        }
        if (firstFailure is not null) throw firstFailure;
    }

    internal static bool SupportsPrevResultOnDel(string version) => version is not ("0.1.0" or "0.2.0" or "0.3.0" or "0.3.1");

    private CniPlugin Plugin(string type, CniCommand command, string network) =>
        CniConfigLoader.FindPlugin(type, _cni.BinDirs) is { } path
            ? new CniPlugin(type, path, _timeout)
            : throw new CniPluginException(type, command, network, $"plugin '{type}' not found in {string.Join(", ", _cni.BinDirs)}");

    public void Dispose() => _watcher?.Dispose();
}
