namespace CriShim.Integration.Harness;

/// <summary>
/// A runc handler whose `restore` of a container waits while that container is held: a restore as slow as a test
/// needs (conmon and the runtime's restore running, the container not made yet), released when the test says. The
/// restore runs in a child of the wrapper that conmon runs, so, as CRIU under a real runtime, it outlives a killed conmon.
/// </summary>
public sealed class HeldRestores : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crishim-held-restores-").FullName;

    public HeldRestores()
    {
        // The runc the daemon would take without a configured path.
        string runc = File.Exists("/opt/crishim/runc/bin/runc") ? "/opt/crishim/runc/bin/runc" : "/usr/bin/runc";
        File.WriteAllText(Runtime, $$"""
            #!/bin/sh
            # The container id is the last argument.
            for arg; do id=$arg; done
            case " $* " in *" restore "*)
                # In a child, which conmon's parent-death signal does not reach: like CRIU, the restore outlives a killed conmon.
                ( while [ -e "{{_dir}}/hold-$id" ]; do sleep 0.1; done; exec {{runc}} "$@" ) &
                wait $!
                exit $? ;;
            esac
            exec {{runc}} "$@"
            """);
        File.SetUnixFileMode(Runtime, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string Runtime => Path.Combine(_dir, "runc");

    /// <summary>The daemon's config: the runc handler runs through the holding wrapper.</summary>
    public string ConfigToml => $"[runtime.handlers.runc]\npath = \"{Runtime}\"\n";

    public void Hold(string containerId) => File.WriteAllText(HoldFile(containerId), "");

    public void Release(string containerId) => File.Delete(HoldFile(containerId));

    private string HoldFile(string containerId) => Path.Combine(_dir, $"hold-{containerId}");

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
