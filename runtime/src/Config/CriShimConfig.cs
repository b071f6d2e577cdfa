namespace CriShim.Runtime.Config;

/// <summary>The daemon's effective configuration: defaults, then the TOML file, then command-line flags.</summary>
public sealed class CriShimConfig
{
    public ServerConfig Server { get; set; } = new();
    public StateConfig State { get; set; } = new();
    public RuntimeConfigSection Runtime { get; set; } = new();
    public CheckpointConfig Checkpoint { get; set; } = new();
    public CniConfig Cni { get; set; } = new();
    public RegistriesConfig Registries { get; set; } = new();
    public StreamingConfig Streaming { get; set; } = new();
    public MetricsConfig Metrics { get; set; } = new();
    public CdiConfig Cdi { get; set; } = new();
}

public sealed class ServerConfig
{
    public string Socket { get; set; } = "/run/crishim/crishim.sock";
    public string LogLevel { get; set; } = "info";
}

public sealed class StateConfig
{
    /// <summary>Persistent state: images, container metadata, checkpoint work dirs.</summary>
    public string Root { get; set; } = "/var/lib/crishim";
    /// <summary>Volatile state that a reboot clears: runtime roots, conmon sockets, exit files.</summary>
    public string RunRoot { get; set; } = "/run/crishim";
}

public sealed class RuntimeConfigSection
{
    public string DefaultHandler { get; set; } = "runc";
    public string CgroupDriver { get; set; } = "cgroupfs";
    public string Conmon { get; set; } = "/usr/bin/conmon";
    /// <summary>
    /// CRI container annotations copied into the OCI spec, where the runtime and CRIU act on some of them
    /// (org.criu.config names a CRIU config, which can run an action script as host root; crun reads run.oci.*).
    /// Exact keys, or prefixes ending in '*'. Empty: none, as pod authors control annotations.
    /// </summary>
    public List<string> AllowedAnnotations { get; set; } = [];
    public Dictionary<string, RuntimeHandlerConfig> Handlers { get; set; } = new()
    {
        ["runc"] = new RuntimeHandlerConfig { Path = RuntimeHandlerConfig.DefaultRuncPath },
        ["crun"] = new RuntimeHandlerConfig { Path = "/usr/bin/crun" },
    };
}

public sealed class RuntimeHandlerConfig
{
    /// <summary>runc >= 1.2 that `make deps` puts in a private prefix: it idmaps mounts, so user-namespaced pods run on it.</summary>
    public const string PrivateRunc = "/opt/crishim/runc/bin/runc";
    /// <summary>
    /// The runc handler's default, looked up on the host that loads the configuration (the shipped file names no
    /// runc path): the private runc when present, else the system's (Debian 12's 1.1 lacks idmapped mounts).
    /// </summary>
    public static string DefaultRuncPath => File.Exists(PrivateRunc) ? PrivateRunc : "/usr/bin/runc";

    public string Path { get; set; } = "";
    /// <summary>The runtime's --root; empty means &lt;run_root&gt;/&lt;handler&gt;.</summary>
    public string Root { get; set; } = "";
}

public sealed class CheckpointConfig
{
    public bool Enabled { get; set; } = true;
    public string Criu { get; set; } = "criu";
    public int DefaultTimeoutSeconds { get; set; } = 120;
    public bool TcpEstablished { get; set; }
    public bool ExtUnixSk { get; set; }
    /// <summary>Path of an extra CRIU configuration file passed to every dump; empty for none.</summary>
    public string CriuConfig { get; set; } = "";
    /// <summary>Kubelet-named archives of a container kept in the directory a checkpoint wrote to; 0 keeps all.</summary>
    public int KeepPerContainer { get; set; }
}

public sealed class CniConfig
{
    public string ConfDir { get; set; } = "/etc/cni/net.d";
    public List<string> BinDirs { get; set; } = ["/usr/lib/cni", "/opt/cni/bin"];
    public int PluginTimeoutSeconds { get; set; } = 60;
}

public sealed class RegistriesConfig
{
    /// <summary>Hosts (host or host:port) reached over plain HTTP; localhost and 127.0.0.0/8 always are.</summary>
    public List<string> Insecure { get; set; } = [];
    /// <summary>Registry host to mirror endpoints (e.g. "docker.io" = ["http://127.0.0.1:5000"]), tried in order before it.</summary>
    public Dictionary<string, List<string>> Mirrors { get; set; } = new();
    /// <summary>
    /// Hosts of Bearer token servers that may receive a pull's credentials when a registry's challenge names
    /// them; any other realm off the registry's own host gets an anonymous token request.
    /// </summary>
    public List<string> TokenRealms { get; set; } = ["auth.docker.io"];
    public int PullTimeoutSeconds { get; set; } = 300;
    public int MaxConcurrentDownloads { get; set; } = 3;
}

public sealed class StreamingConfig
{
    public string Address { get; set; } = "127.0.0.1";
    /// <summary>0 picks a free port at start-up.</summary>
    public int Port { get; set; }
}

public sealed class MetricsConfig
{
    /// <summary>IP:port of the Prometheus endpoint (GET /metrics over plain HTTP); empty: off, nothing listens.</summary>
    public string Address { get; set; } = "";
}

public sealed class CdiConfig
{
    /// <summary>Directories of CDI spec files (.json, .yaml); a device in a later one overrides the same name in an earlier one.</summary>
    public List<string> SpecDirs { get; set; } = ["/etc/cdi", "/var/run/cdi"];
}
