using System.Text.Json;
using System.Text.Json.Serialization;
using CriShim.Runtime.Exec;

namespace CriShim.Runtime.Oci;

/// <summary>`runc|crun state` output, the fields the daemon uses.</summary>
public sealed record OciContainerState(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("bundle")] string Bundle,
    [property: JsonPropertyName("created")] DateTimeOffset Created);

[JsonSerializable(typeof(OciContainerState))]
[JsonSerializable(typeof(List<OciContainerState>))]
internal sealed partial class OciJsonContext : JsonSerializerContext;

/// <summary>Thrown when the OCI runtime has no container with the id.</summary>
public sealed class OciContainerNotFoundException(string id, string runtime)
    : Exception($"{runtime} has no container {id}");

/// <summary>One OCI runtime handler (runc or crun), driven through its command line with its own --root.</summary>
public sealed class OciRuntime(string handler, string binaryPath, string root)
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(30);
    private readonly ExternalCommand _command = new(handler, binaryPath);

    public string Handler { get; } = handler;
    public string BinaryPath { get; } = binaryPath;
    public string Root { get; } = root;

    private List<string> Global(params string[] rest) => ["--root", Root, .. rest];

    /// <summary>The first line of `--version`, e.g. "runc version 1.1.5".</summary>
    public async Task<string> VersionAsync(CancellationToken cancellationToken)
    {
        var output = await _command.RunAsync(["--version"], QueryTimeout, cancellationToken);
        return output.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "";
    }

    public async Task<OciContainerState> StateAsync(string id, CancellationToken cancellationToken)
    {
        var output = await _command.RunAsync(Global("state", id), QueryTimeout, cancellationToken, allowFailure: true);
        if (output.ExitCode != 0)
        {
            if (output.StandardError.Contains("does not exist", StringComparison.OrdinalIgnoreCase) ||
                output.StandardError.Contains("not found", StringComparison.OrdinalIgnoreCase) ||
                output.StandardError.Contains("No such file or directory", StringComparison.Ordinal))
            {
                throw new OciContainerNotFoundException(id, Handler);
            }
            throw new ExternalCommandException(Handler, Global("state", id), output.ExitCode, output.StandardError);
        }
        return JsonSerializer.Deserialize(output.StandardOutput, OciJsonContext.Default.OciContainerState)
            ?? throw new InvalidDataException($"{Handler} state {id} printed no state");
    }

    public async Task<IReadOnlyList<OciContainerState>> ListAsync(CancellationToken cancellationToken)
    {
        var output = await _command.RunAsync(Global("list", "--format", "json"), QueryTimeout, cancellationToken);
        string json = output.StandardOutput.Trim();
        // runc prints "null" when its root holds no containers.
        if (json.Length == 0 || json == "null") return [];
        return JsonSerializer.Deserialize(json, OciJsonContext.Default.ListOciContainerState) ?? [];
    }
}
