namespace CriShim.Runtime.Config;

/// <summary>What the daemon was asked to do, parsed from argv.</summary>
public sealed record CommandLine(string Verb, string ConfigPath, bool ConfigPathGiven, IReadOnlyDictionary<string, string> Overrides)
{
    public const string Usage = """
        usage: crishim [flags]            run the daemon
               crishim config default     print the default configuration file
               crishim version            print the version (also --version)
               crishim help               print this text (also --help, -h)

        flags (each overrides the config file):
          --config <path>          configuration file (default /etc/crishim/crishim.toml)
          --socket <path>          listen socket (server.socket)
          --root <dir>             persistent state dir (state.root)
          --run-root <dir>         volatile state dir (state.run_root)
          --log-level <level>      server.log_level
          --cgroup-driver <name>   runtime.cgroup_driver (cgroupfs|systemd)
          --default-handler <name> runtime.default_handler
          --conmon <path>          runtime.conmon
          --criu <path>            checkpoint.criu
          --cni-conf-dir <dir>     cni.conf_dir
          --streaming-address <ip> streaming.address
          --streaming-port <port>  streaming.port
        """;

    private static readonly Dictionary<string, Action<CriShimConfig, string>> Setters = new()
    {
        ["--socket"] = (c, v) => c.Server.Socket = RequireAbsolute("--socket", v),
        ["--root"] = (c, v) => c.State.Root = RequireAbsolute("--root", v),
        ["--run-root"] = (c, v) => c.State.RunRoot = RequireAbsolute("--run-root", v),
        ["--log-level"] = (c, v) => c.Server.LogLevel = v,
        ["--cgroup-driver"] = (c, v) => c.Runtime.CgroupDriver = v is "cgroupfs" or "systemd"
            ? v : throw new ConfigException($"--cgroup-driver: \"{v}\" is not one of \"cgroupfs\", \"systemd\""),
        ["--default-handler"] = (c, v) => c.Runtime.DefaultHandler = v,
        ["--conmon"] = (c, v) => c.Runtime.Conmon = RequireAbsolute("--conmon", v),
        ["--criu"] = (c, v) => c.Checkpoint.Criu = v,
        ["--cni-conf-dir"] = (c, v) => c.Cni.ConfDir = RequireAbsolute("--cni-conf-dir", v),
        ["--streaming-address"] = (c, v) => c.Streaming.Address = v,
        ["--streaming-port"] = (c, v) => c.Streaming.Port = int.TryParse(v, out int p) && p is >= 0 and <= 65535
            ? p : throw new ConfigException($"--streaming-port: \"{v}\" is not a port number"),
    };

    private static bool IsFlag(string name) => name == "--config" || Setters.ContainsKey(name);

    private static string RequireAbsolute(string flag, string value) =>
        Path.IsPathRooted(value) ? value : throw new ConfigException($"{flag}: \"{value}\" is not an absolute path");

    public static CommandLine Parse(string[] args)
    {
        string verb = "run";
        string configPath = ConfigLoader.DefaultPath;
        bool configGiven = false;
        var overrides = new Dictionary<string, string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg is "-h" or "--help" || (i == 0 && arg == "help")) return new CommandLine("help", configPath, false, overrides);
            if (arg == "--version" || (i == 0 && arg == "version")) return new CommandLine("version", configPath, false, overrides);
            if (i == 0 && arg == "config")
            {
                return args.Length == 2 && args[1] == "default"
                    ? new CommandLine("config-default", configPath, false, overrides)
                    : throw new ConfigException("usage: crishim config default");
            }
            string name = arg, value;
            int eq = arg.IndexOf('=');
            if (eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                if (!arg.StartsWith("--", StringComparison.Ordinal)) throw new ConfigException($"unexpected argument \"{arg}\"");
                if (!IsFlag(arg)) throw new ConfigException($"unknown flag {arg}");
                if (i + 1 >= args.Length) throw new ConfigException($"{arg} needs a value");
                value = args[++i];
            }
            if (name == "--config")
            {
                configPath = value;
                configGiven = true;
            }
            else if (Setters.ContainsKey(name))
            {
                overrides[name] = value;
            }
            else
            {
                throw new ConfigException($"unknown flag {name}");
            }
        }
        return new CommandLine(verb, configPath, configGiven, overrides);
    }

    /// <summary>The file, then the flags, then the cross-section checks.</summary>
    public CriShimConfig LoadConfig()
    {
        var config = ConfigLoader.LoadFile(ConfigPath, ConfigPathGiven);
        foreach (var (flag, value) in Overrides) Setters[flag](config, value);
        return ConfigLoader.Validate(config);
    }
}
