using CriShim.Runtime.Config;
using CriShim.Runtime.Daemon;
using CriShim.Runtime.Server;

CommandLine commandLine;
try
{
    commandLine = CommandLine.Parse(args);
}
catch (ConfigException e)
{
    // A mistyped command line gets the usage, as other CLIs answer it (exit 2, like getopt users).
    Console.Error.WriteLine($"crishim: {e.Message}");
    Console.Error.WriteLine(CommandLine.Usage);
    return 2;
}

CriShimConfig config;
try
{
    switch (commandLine.Verb)
    {
        case "help":
            Console.WriteLine(CommandLine.Usage);
            return 0;
        case "version":
            Console.WriteLine($"{RuntimeStatusService.RuntimeName} {RuntimeStatusService.RuntimeVersion} (CRI {RuntimeStatusService.ApiVersion})");
            return 0;
        case "config-default":
            Console.Write(DefaultConfigFile.Text);
            return 0;
    }
    config = commandLine.LoadConfig();
}
catch (ConfigException e)
{
    Console.Error.WriteLine($"crishim: configuration error: {e.Message}");
    return 2;
}

try
{
    return await DaemonHost.RunAsync(config);
}
catch (InvalidOperationException e) when (e.Message.Contains(config.Server.Socket, StringComparison.Ordinal))
{
    Console.Error.WriteLine($"crishim: {e.Message}");
    return 1;
}
