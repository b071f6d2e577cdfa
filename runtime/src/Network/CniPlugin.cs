using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Network;

/// <summary>The CNI operations CriShim issues.</summary>
public enum CniCommand
{
    Add,
    Del,
    Check,
    Version,
}

/// <summary>What a plugin is run for: the CNI_* environment of one invocation.</summary>
public sealed record CniInvocation(
    CniCommand Command,
    string ContainerId,
    string NetNs,
    string IfName,
    string CniArgs,
    IReadOnlyList<string> BinDirs)
{
    public static string CommandName(CniCommand command) => command switch
    {
        CniCommand.Add => "ADD",
        CniCommand.Del => "DEL",
        CniCommand.Check => "CHECK",
        _ => "VERSION",
    };

    /// <summary>The environment the spec defines; CNI_PATH is every bin dir, as plugins exec their IPAM plugin through it.</summary>
    public IReadOnlyDictionary<string, string?> Environment() => new Dictionary<string, string?>
    {
        ["CNI_COMMAND"] = CommandName(Command),
        ["CNI_CONTAINERID"] = ContainerId,
        ["CNI_NETNS"] = NetNs,
        ["CNI_IFNAME"] = IfName,
        ["CNI_ARGS"] = CniArgs,
        ["CNI_PATH"] = string.Join(':', BinDirs),
    };
}

/// <summary>A plugin returned a CNI error (or failed without one): carries the plugin's own message.</summary>
public sealed class CniPluginException : Exception
{
    public CniPluginException(string plugin, CniCommand command, string network, CniError error)
        : this(plugin, command, network, error.Msg
            + (error.Details.Length > 0 ? $" ({error.Details})" : "")
            + (error.Code != 0 ? $" [code {error.Code}: {CniError.CodeName(error.Code)}]" : ""))
    {
        Error = error;
    }

    public CniPluginException(string plugin, CniCommand command, string network, string detail)
        : base($"CNI plugin {plugin} {CniInvocation.CommandName(command)} on network \"{network}\" failed: {detail}")
    {
        Plugin = plugin;
        Command = command;
        Detail = detail;
    }

    public string Plugin { get; }
    public CniCommand Command { get; }
    /// <summary>What went wrong, without the plugin/command/network prefix.</summary>
    public string Detail { get; }
    public CniError? Error { get; }
}

/// <summary>A plugin ran past cni.plugin_timeout_seconds and was killed.</summary>
public sealed class CniPluginTimeoutException(string plugin, CniCommand command, string network, TimeSpan limit)
    : TimeoutException($"CNI plugin {plugin} {CniInvocation.CommandName(command)} on network \"{network}\" did not finish within {limit.TotalSeconds:0.###} s and was killed");

/// <summary>
/// One CNI plugin binary run through <see cref="ExternalCommand"/>: CNI_* environment, the network
/// config on stdin, the result on stdout, a CNI error object turned into a <see cref="CniPluginException"/>.
/// </summary>
public sealed class CniPlugin(string type, string path, TimeSpan timeout)
{
    private readonly ExternalCommand _command = new($"CNI plugin {type}", path);

    public string Type { get; } = type;
    public string Path { get; } = path;

    /// <summary>Runs the plugin; returns its stdout (the result for ADD, usually empty for DEL).</summary>
    public async Task<string> ExecAsync(CniInvocation invocation, string networkName, string stdinConfig, CancellationToken cancellationToken)
    {
        CommandOutput output;
        try
        {
            output = await _command.RunAsync([], timeout, cancellationToken, invocation.Environment(), stdinConfig, allowFailure: true);
        }
        catch (ExternalCommandTimeoutException)
        {
            throw new CniPluginTimeoutException(Type, invocation.Command, networkName, timeout);
        }
        catch (ExternalCommandException e)
        {
            throw new CniPluginException(Type, invocation.Command, networkName, e.StandardError.Trim());
        }
        if (output.ExitCode != 0)
        {
            // The spec puts the error object on stdout; some plugins also (or only) write to stderr.
            var error = CniError.TryParse(output.StandardOutput) ?? CniError.TryParse(output.StandardError);
            if (error is not null) throw new CniPluginException(Type, invocation.Command, networkName, error);
            string text = output.StandardError.Trim().Length > 0 ? output.StandardError.Trim() : output.StandardOutput.Trim();
            throw new CniPluginException(Type, invocation.Command, networkName,
                $"exit {output.ExitCode}: {(text.Length == 0 ? "no error output" : text.Length > 2000 ? text[^2000..] : text)}");
        }
        return output.StandardOutput;
    }
}
