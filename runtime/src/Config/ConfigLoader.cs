using Tomlyn;
using Tomlyn.Model;

namespace CriShim.Runtime.Config;

public static class ConfigLoader
{
    public const string DefaultPath = "/etc/crishim/crishim.toml";

    private static readonly string[] LogLevels = ["trace", "debug", "info", "warning", "error", "critical"];

    /// <summary>
    /// Loads <paramref name="path"/> over the defaults. A missing file at the default path means
    /// "use the defaults"; a missing file the operator named explicitly is an error.
    /// </summary>
    public static CriShimConfig LoadFile(string path, bool explicitlyNamed)
    {
        if (!File.Exists(path))
        {
            return explicitlyNamed ? throw new ConfigException($"config file {path} does not exist") : Validate(new CriShimConfig());
        }
        try
        {
            return Parse(File.ReadAllText(path), path);
        }
        catch (ConfigException e)
        {
            throw new ConfigException($"{path}: {e.Message}");
        }
    }

    public static CriShimConfig Parse(string toml, string sourceName = "config")
    {
        TomlTable root;
        try
        {
            root = TomlSerializer.Deserialize<TomlTable>(toml, ConfigTomlContext.Default)
                ?? throw new ConfigException("the file is empty");
        }
        catch (TomlException e)
        {
            throw new ConfigException($"not valid TOML: {e.Message}");
        }
        var config = new CriShimConfig();
        Apply(new TomlSection(root, ""), config);
        return Validate(config);
    }

    private static void Apply(TomlSection root, CriShimConfig config)
    {
        if (root.Table("server") is { } server)
        {
            config.Server.Socket = server.AbsolutePath("socket", config.Server.Socket);
            config.Server.LogLevel = server.OneOf("log_level", config.Server.LogLevel, LogLevels);
            server.RejectUnknownKeys();
        }
        if (root.Table("state") is { } state)
        {
            config.State.Root = state.AbsolutePath("root", config.State.Root);
            config.State.RunRoot = state.AbsolutePath("run_root", config.State.RunRoot);
            state.RejectUnknownKeys();
        }
        if (root.Table("runtime") is { } runtime)
        {
            var r = config.Runtime;
            r.DefaultHandler = runtime.String("default_handler", r.DefaultHandler);
            r.CgroupDriver = runtime.OneOf("cgroup_driver", r.CgroupDriver, "cgroupfs", "systemd");
            r.Conmon = runtime.AbsolutePath("conmon", r.Conmon);
            r.AllowedAnnotations = runtime.StringList("allowed_annotations", r.AllowedAnnotations);
            foreach (string name in runtime.NamedKeys("handlers"))
            {
                var handler = runtime.Named("handlers", name);
                var existing = r.Handlers.GetValueOrDefault(name) ?? new RuntimeHandlerConfig();
                r.Handlers[name] = new RuntimeHandlerConfig
                {
                    Path = handler.AbsolutePath("path", existing.Path),
                    Root = handler.AbsolutePath("root", existing.Root, allowEmpty: true),
                };
                handler.RejectUnknownKeys();
            }
            runtime.RejectUnknownKeys();
        }
        if (root.Table("checkpoint") is { } checkpoint)
        {
            var c = config.Checkpoint;
            c.Enabled = checkpoint.Bool("enabled", c.Enabled);
            c.Criu = checkpoint.String("criu", c.Criu);
            c.DefaultTimeoutSeconds = checkpoint.Int("default_timeout_seconds", c.DefaultTimeoutSeconds, 1, 86400);
            c.TcpEstablished = checkpoint.Bool("tcp_established", c.TcpEstablished);
            c.ExtUnixSk = checkpoint.Bool("ext_unix_sk", c.ExtUnixSk);
            c.CriuConfig = checkpoint.AbsolutePath("criu_config", c.CriuConfig, allowEmpty: true);
            c.KeepPerContainer = checkpoint.Int("keep_per_container", c.KeepPerContainer, 0, 10000);
            checkpoint.RejectUnknownKeys();
        }
        if (root.Table("cni") is { } cni)
        {
            config.Cni.ConfDir = cni.AbsolutePath("conf_dir", config.Cni.ConfDir);
            config.Cni.BinDirs = cni.StringList("bin_dirs", config.Cni.BinDirs);
            config.Cni.PluginTimeoutSeconds = cni.Int("plugin_timeout_seconds", config.Cni.PluginTimeoutSeconds, 1, 3600);
            cni.RejectUnknownKeys();
        }
        if (root.Table("registries") is { } registries)
        {
            var g = config.Registries;
            g.Insecure = registries.StringList("insecure", g.Insecure);
            g.TokenRealms = registries.StringList("token_realms", g.TokenRealms);
            g.PullTimeoutSeconds = registries.Int("pull_timeout_seconds", g.PullTimeoutSeconds, 1, 86400);
            g.MaxConcurrentDownloads = registries.Int("max_concurrent_downloads", g.MaxConcurrentDownloads, 1, 64);
            foreach (string host in registries.NamedKeys("mirrors"))
            {
                g.Mirrors[host] = registries.NamedStringList("mirrors", host);
            }
            registries.RejectUnknownKeys();
        }
        if (root.Table("streaming") is { } streaming)
        {
            config.Streaming.Address = streaming.String("address", config.Streaming.Address);
            config.Streaming.Port = streaming.Int("port", config.Streaming.Port, 0, 65535);
            streaming.RejectUnknownKeys();
        }
        if (root.Table("metrics") is { } metrics)
        {
            config.Metrics.Address = metrics.String("address", config.Metrics.Address);
            metrics.RejectUnknownKeys();
        }
        if (root.Table("cdi") is { } cdi)
        {
            config.Cdi.SpecDirs = cdi.StringList("spec_dirs", config.Cdi.SpecDirs);
            cdi.RejectUnknownKeys();
        }
        root.RejectUnknownKeys();
    }

    /// <summary>Checks that hold across sections; also run after command-line overrides.</summary>
    public static CriShimConfig Validate(CriShimConfig config)
    {
        if (!config.Runtime.Handlers.ContainsKey(config.Runtime.DefaultHandler))
        {
            throw new ConfigException(
                $"runtime.default_handler: \"{config.Runtime.DefaultHandler}\" is not a configured handler (have: {string.Join(", ", config.Runtime.Handlers.Keys)})");
        }
        foreach (var (name, handler) in config.Runtime.Handlers)
        {
            if (handler.Path.Length == 0) throw new ConfigException($"runtime.handlers.{name}.path: must be set");
        }
        if (!LogLevels.Contains(config.Server.LogLevel))
        {
            throw new ConfigException($"server.log_level: \"{config.Server.LogLevel}\" is not one of {string.Join(", ", LogLevels)}");
        }
        if (!System.Net.IPAddress.TryParse(config.Streaming.Address, out _))
        {
            throw new ConfigException($"streaming.address: \"{config.Streaming.Address}\" is not an IP address");
        }
        if (config.Cdi.SpecDirs.FirstOrDefault(dir => !Path.IsPathRooted(dir)) is { } relative)
        {
            throw new ConfigException($"cdi.spec_dirs: \"{relative}\" is not an absolute path");
        }
        if (config.Metrics.Address.Length > 0 && MetricsEndpoint(config.Metrics) is null)
        {
            throw new ConfigException($"metrics.address: \"{config.Metrics.Address}\" is not an IP address with a port, e.g. \"127.0.0.1:9090\"");
        }
        return config;
    }

    /// <summary>Where the Prometheus endpoint listens: null when metrics are off or the address is no IP:port (port 0 included).</summary>
    public static System.Net.IPEndPoint? MetricsEndpoint(MetricsConfig metrics) =>
        System.Net.IPEndPoint.TryParse(metrics.Address, out var endpoint) && endpoint.Port != 0 ? endpoint : null;
}

/// <summary>Source-generated, so parsing stays AOT-safe: the file is read as an untyped table and mapped by hand.</summary>
[Tomlyn.Serialization.TomlSerializable(typeof(TomlTable))]
internal sealed partial class ConfigTomlContext : Tomlyn.Serialization.TomlSerializerContext;
