namespace CriShim.Runtime.Config;

/// <summary>
/// The commented file that `crishim config default` prints, `make install` writes and the .deb ships: the same on
/// every host, so nothing in it depends on what the machine that printed it has installed.
/// </summary>
public static class DefaultConfigFile
{
    public const string Text = """
        # CriShim configuration (TOML). Every key is optional: a missing key keeps the default shown.
        # Command-line flags override this file (see `crishim --help`).

        [server]
        # Unix socket the kubelet and crictl connect to (unix://<socket>).
        socket = "/run/crishim/crishim.sock"
        # trace, debug, info, warning, error or critical.
        log_level = "info"

        [state]
        # Persistent state: images, layers, pod and container metadata, checkpoint work dirs.
        root = "/var/lib/crishim"
        # Volatile state cleared on reboot: OCI runtime roots, conmon sockets, exit files.
        run_root = "/run/crishim"

        [runtime]
        # Handler used when a pod names none (RunPodSandboxRequest.runtime_handler = "").
        default_handler = "runc"
        # "cgroupfs" or "systemd"; must match the kubelet's --cgroup-driver.
        cgroup_driver = "cgroupfs"
        # conmon, the per-container monitor that holds stdio, writes logs and exit codes.
        conmon = "/usr/bin/conmon"
        # CRI container annotations passed into the OCI spec, where runc, crun and CRIU act on some
        # (org.criu.config names a CRIU config, which can run an action script as root). Pod authors
        # write annotations, so none pass by default. Exact keys or prefixes ending in '*', e.g.
        # ["org.criu.config", "run.oci.*"].
        allowed_annotations = []

        # One table per runtime handler (the kubelet's RuntimeClass handler names).
        # root: the runtime's --root state dir; empty means <run_root>/<handler name>.
        # runc without a path is chosen at start-up: /opt/crishim/runc/bin/runc (runc >= 1.2, idmapped mounts)
        # when `make deps` made it on this host, else /usr/bin/runc.
        [runtime.handlers.runc]
        # path = "/usr/bin/runc"
        root = ""

        [runtime.handlers.crun]
        path = "/usr/bin/crun"
        root = ""

        [checkpoint]
        # CheckpointContainer support (needs CRIU >= 3.16).
        enabled = true
        # CRIU binary, a name looked up on PATH or an absolute path.
        criu = "criu"
        # Limit used when a request's timeout is 0.
        default_timeout_seconds = 120
        # Dump established TCP connections / external unix sockets.
        tcp_established = false
        ext_unix_sk = false
        # Extra CRIU configuration file for every dump; empty for none.
        criu_config = ""
        # After a checkpoint to a kubelet-named archive (checkpoint-<pod>_<namespace>-<container>-<time>.tar),
        # keep that container's newest N such archives in that directory and remove older ones; 0 keeps all.
        keep_per_container = 0

        [cni]
        # The first .conflist/.conf here, in lexical order, is the pod network.
        conf_dir = "/etc/cni/net.d"
        bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
        # A plugin still running after this is killed.
        plugin_timeout_seconds = 60

        [registries]
        # Registries reached over plain HTTP (host or host:port); localhost and 127.0.0.0/8 always are.
        insecure = []
        # Token servers (host or host:port) that may receive pull credentials when a registry's Bearer
        # challenge sends the client to them; other hosts than the registry's own get no credentials.
        token_realms = ["auth.docker.io"]
        # Whole-pull limit.
        pull_timeout_seconds = 300
        # Layers of one image downloaded at the same time.
        max_concurrent_downloads = 3

        # Mirrors tried in order before the registry itself, per registry host, e.g.
        # "docker.io" = ["http://127.0.0.1:5000"]
        [registries.mirrors]

        [streaming]
        # Address and port of the exec/attach/port-forward server; port 0 picks a free port.
        address = "127.0.0.1"
        port = 0

        [metrics]
        # Prometheus endpoint (GET /metrics, plain HTTP) as IP:port, e.g. "127.0.0.1:9090"; empty: off,
        # nothing listens. Anyone who can reach it sees pod and container counts and RPC rates.
        address = ""

        [cdi]
        # CDI spec files (.json or .yaml) that resolve ContainerConfig.CDI_devices and cdi.k8s.io/*
        # annotations; a device in a later directory overrides the same name in an earlier one.
        spec_dirs = ["/etc/cdi", "/var/run/cdi"]

        """;
}
