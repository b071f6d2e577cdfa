using System.Diagnostics;

namespace CriShim.Integration.Harness;

/// <summary>
/// A private pod network for one test daemon: a bridge named crit&lt;slot&gt; on 10.(124+slot/256).(slot%256).0/24,
/// a CNI conf dir and host-local data dir under the daemon's base dir. Slots are claimed with a file
/// under /run/crishim-it-net (created exclusively), so parallel tests and concurrent test runs on the
/// same machine never share a bridge or a subnet. Nothing here touches /etc/cni/net.d.
/// </summary>
public sealed record TestNetwork(int Slot, string BaseDir)
{
    private const string ClaimDir = "/run/crishim-it-net";
    private const int Slots = 1024;

    public string Bridge => $"crit{Slot}";
    public string SubnetPrefix => $"10.{124 + Slot / 256}.{Slot % 256}";
    public string Subnet => $"{SubnetPrefix}.0/24";
    public string Gateway => $"{SubnetPrefix}.1";
    public string ConfDir => Path.Combine(BaseDir, "cni", "net.d");
    public string DataDir => Path.Combine(BaseDir, "cni", "ipam");
    /// <summary>Where host-local keeps this network's leases (one file per leased IP).</summary>
    public string LeaseDir(string networkName = "crishim-it") => Path.Combine(DataDir, networkName);
    public string ConfFile => Path.Combine(ConfDir, "10-crishim-it.conflist");
    public string CniToml => $"[cni]\nconf_dir = \"{ConfDir}\"\n";

    /// <summary>The usual config: bridge (gateway, no masquerade), host-local, portmap (portMappings), loopback.</summary>
    public string Conflist(string name = "crishim-it", bool portmap = true, string extraPlugins = "") => $$"""
        {
          "cniVersion": "1.0.0",
          "name": "{{name}}",
          "plugins": [
            {
              "type": "bridge",
              "bridge": "{{Bridge}}",
              "isGateway": true,
              "ipMasq": false,
              "hairpinMode": true,
              "ipam": {
                "type": "host-local",
                "dataDir": "{{DataDir}}",
                "ranges": [[{ "subnet": "{{Subnet}}" }]],
                "routes": [{ "dst": "0.0.0.0/0" }]
              }
            }{{(portmap ? ",\n    { \"type\": \"portmap\", \"capabilities\": { \"portMappings\": true }, \"snat\": true }" : "")}}{{extraPlugins}},
            { "type": "loopback" }
          ]
        }
        """;

    /// <summary>Claims a free slot for <paramref name="baseDir"/> (or finds the one it already has, for restarts).</summary>
    public static TestNetwork ClaimFor(string baseDir)
    {
        string marker = Path.Combine(baseDir, "cni", "slot");
        if (File.Exists(marker)) return new TestNetwork(int.Parse(File.ReadAllText(marker).Trim()), baseDir);
        Directory.CreateDirectory(ClaimDir);
        int start = Random.Shared.Next(Slots);
        for (int i = 0; i < Slots; i++)
        {
            int slot = (start + i) % Slots;
            string claim = Path.Combine(ClaimDir, slot.ToString());
            if (File.Exists(claim) && !IsStale(claim)) continue;
            if (File.Exists(claim)) File.Delete(claim);
            var network = new TestNetwork(slot, baseDir);
            if (Directory.Exists($"/sys/class/net/{network.Bridge}")) continue;
            try
            {
                using var stream = new FileStream(claim, FileMode.CreateNew, FileAccess.Write);
                stream.Write(System.Text.Encoding.UTF8.GetBytes(baseDir));
            }
            catch (IOException)
            {
                continue; // someone else claimed it first
            }
            Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
            File.WriteAllText(marker, slot.ToString());
            return network;
        }
        throw new InvalidOperationException($"no free test network slot in {ClaimDir}");
    }

    /// <summary>A claim whose owner's base dir is gone belongs to a test run that did not clean up.</summary>
    private static bool IsStale(string claim)
    {
        try
        {
            return !Directory.Exists(File.ReadAllText(claim).Trim());
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Claims a network and writes the usual conflist into its conf dir.</summary>
    public static TestNetwork CreateDefault(string baseDir)
    {
        var network = ClaimFor(baseDir);
        if (!File.Exists(network.ConfFile))
        {
            Directory.CreateDirectory(network.ConfDir);
            File.WriteAllText(network.ConfFile, network.Conflist());
        }
        return network;
    }

    /// <summary>
    /// The harness default: a config with no [cni] section gets this daemon's own network, so pods never
    /// reach the host's /etc/cni/net.d.
    /// </summary>
    public static string WithDefaultCni(string baseDir, string? configToml)
    {
        string toml = configToml ?? "";
        if (toml.Contains("[cni]", StringComparison.Ordinal)) return toml;
        return toml + (toml.Length > 0 && !toml.EndsWith('\n') ? "\n" : "") + CreateDefault(baseDir).CniToml;
    }

    /// <summary>Deletes the bridge and frees the slot of <paramref name="baseDir"/>, if it has one.</summary>
    public static void ReleaseFor(string baseDir)
    {
        string marker = Path.Combine(baseDir, "cni", "slot");
        if (!File.Exists(marker)) return;
        new TestNetwork(int.Parse(File.ReadAllText(marker).Trim()), baseDir).Release();
    }

    public void Release()
    {
        // Pods a failed test left behind keep their veths; deleting the host ends frees the bridge's ports.
        foreach (string port in BridgePorts())
        {
            if (port.StartsWith("veth", StringComparison.Ordinal)) RunQuietly("ip", "link", "del", port);
        }
        if (Directory.Exists($"/sys/class/net/{Bridge}")) RunQuietly("ip", "link", "del", Bridge);
        string claim = Path.Combine(ClaimDir, Slot.ToString());
        try
        {
            if (File.Exists(claim) && File.ReadAllText(claim).Trim() == BaseDir) File.Delete(claim);
        }
        catch (IOException)
        {
        }
        File.Delete(Path.Combine(BaseDir, "cni", "slot"));
    }

    /// <summary>Runs a host tool; returns stdout, throwing with stderr on failure.</summary>
    public static string Run(string tool, params string[] args)
    {
        var info = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr}");
        return stdout.Result;
    }

    private static void RunQuietly(string tool, params string[] args)
    {
        try
        {
            Run(tool, args);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    /// <summary>Interfaces enslaved to this network's bridge (the pods' host-side veths).</summary>
    public IReadOnlyList<string> BridgePorts() =>
        Directory.Exists($"/sys/class/net/{Bridge}/brif") ? [.. Directory.GetFileSystemEntries($"/sys/class/net/{Bridge}/brif").Select(p => Path.GetFileName(p))] : [];

    /// <summary>IPs host-local has leased on this network (its files named by address).</summary>
    public IReadOnlyList<string> Leases(string networkName = "crishim-it") =>
        Directory.Exists(LeaseDir(networkName))
            ? [.. Directory.GetFiles(LeaseDir(networkName)).Select(p => Path.GetFileName(p)).Where(n => n.StartsWith("10.", StringComparison.Ordinal))]
            : [];
}
