namespace CriShim.TestImages;

/// <summary>
/// Offline stand-ins for the images critest v1.34 pulls (see shared/reference/critest-images.md):
/// each under its upstream repository path, with its upstream tags and <c>:latest</c> (what
/// critest's --registry-prefix rewrite asks for). Needs gcc with static glibc for /pause and nnp.
/// </summary>
public static class CritestImageSet
{
    public const string StandInLabel = "io.cri-harness.stand-in-for";

    private const string E2e = "e2e-test-images";
    private const string CriTools = "k8s-staging-cri-tools";

    /// <summary>The sandbox image (pause:3.10 and its other tags), alone: what containerd's pods need.</summary>
    public static TestImage Pause() =>
        StandIn("pause", ["3.10", "3.9", "3.8", "3.6", "latest"], "registry.k8s.io/pause:3.10",
            [new LayerBuilder().File("/pause", CompileStatic(PauseSource), FileModes.Mode0755).Build()],
            new ContainerConfig { Entrypoint = ["/pause"], User = "65535:65535" });

    public static IReadOnlyList<TestImage> Build()
    {
        var bases = BaseLayers.Load();
        Layer busybox = bases.Busybox;
        var sh = new ContainerConfig { Cmd = ["sh"] };
        Layer Marker(string path) => new LayerBuilder().File(path, "").Build();
        TestImage Base(string repository, string[] tags, string upstream, ContainerConfig config, params Layer[] extra) =>
            StandIn(repository, tags, upstream, [busybox, .. extra], config);

        var nginxConfig = new ContainerConfig
        {
            Cmd = ["nginx", "-g", "daemon off;"],
            Env = [TestImageSet.DefaultPath, "NGINX_VERSION=1.14.2"],
            ExposedPorts = new() { ["80/tcp"] = new EmptyObject() },
            StopSignal = "SIGTERM",
        };
        var nginx = NginxLayer();
        var hostnetNginx = new LayerBuilder().File("/etc/nginx/conf.d/default.conf", NginxSiteConfig(12003)).Build();
        const string hostnetUpstream = "gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64";
        return
        [
            Base($"{E2e}/busybox", ["1.29-2", "latest"], "registry.k8s.io/e2e-test-images/busybox:1.29-2", sh),
            Base($"{E2e}/nginx", ["1.14-2", "latest"], "registry.k8s.io/e2e-test-images/nginx:1.14-2", nginxConfig, nginx),
            StandIn($"{CriTools}/hostnet-nginx-amd64", ["latest"], hostnetUpstream, [busybox, nginx, hostnetNginx], nginxConfig, asIndex: false),
            Base($"{CriTools}/hostnet-nginx", ["latest"], hostnetUpstream, nginxConfig, nginx, hostnetNginx),
            Base($"{E2e}/httpd", ["2.4.39-4", "latest"], "registry.k8s.io/e2e-test-images/httpd:2.4.39-4", new ContainerConfig
            {
                Cmd = ["httpd-foreground"],
                WorkingDir = "/usr/local/apache2",
                ExposedPorts = new() { ["80/tcp"] = new EmptyObject() },
                StopSignal = "SIGWINCH",
            }, HttpdLayer()),
            Base($"{E2e}/nonewprivs", ["1.3", "latest"], "registry.k8s.io/e2e-test-images/nonewprivs:1.3",
                new ContainerConfig { Entrypoint = ["/usr/local/bin/nnp"] },
                // Set-uid root: with RunAsUser 1000 it reports euid 0, with NoNewPrivs 1000.
                new LayerBuilder().File("/usr/local/bin/nnp", CompileStatic(NnpSource), FileModes.Mode4755).Build()),
            Pause(),
            Base($"{CriTools}/test-image-user-uid", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-user-uid", sh with { User = "1002" }),
            Base($"{CriTools}/test-image-user-username", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-user-username", sh with { User = "www-data" }),
            Base($"{CriTools}/test-image-user-uid-group", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-user-uid-group", sh with { User = "1003:1004" }),
            Base($"{CriTools}/test-image-user-username-group", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-user-username-group", sh with { User = "www-data:1004" }),
            Base($"{CriTools}/test-image-predefined-group", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-predefined-group", sh with { User = "1000" }, PredefinedGroupLayer()),
            .. Enumerable.Range(1, 3).Select(n =>
                Base($"{CriTools}/test-image-{n}", ["latest"], $"gcr.io/k8s-staging-cri-tools/test-image-{n}", sh, Marker($"/test-image-{n}"))),
            Base($"{CriTools}/test-image-latest", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-latest", sh, Marker("/test-image-latest")),
            Base($"{CriTools}/test-image-tags", ["1", "2", "3", "latest"], "gcr.io/k8s-staging-cri-tools/test-image-tags:1", sh, Marker("/same-image")),
            Base($"{CriTools}/test-image-tag", ["test", "latest"], "gcr.io/k8s-staging-cri-tools/test-image-tag:test", sh, Marker("/test")),
            Base($"{CriTools}/test-image-tag", ["all"], "gcr.io/k8s-staging-cri-tools/test-image-tag:all", sh, Marker("/all")),
            // Cannot stand in for the upstream digest (9700f9a2…): critest's pull-by-digest spec fails regardless.
            Base($"{CriTools}/test-image-digest", ["latest"], "gcr.io/k8s-staging-cri-tools/test-image-digest", sh, Marker("/test-image-digest")),
            Base("docker/library/busybox", ["1.35.0-glibc", "1-glibc", "1", "latest"], "public.ecr.aws/docker/library/busybox:1.35.0-glibc", sh),
            StandIn("docker/library/busybox", ["1-musl", "1-uclibc"], "public.ecr.aws/docker/library/busybox:1-musl", [bases.BusyboxStatic], sh),
        ];
    }

    /// <summary>An image labelled with its upstream; multi-arch upstreams become an index with one linux/amd64 entry.</summary>
    private static TestImage StandIn(string repository, string[] tags, string upstream, IEnumerable<Layer> layers, ContainerConfig config, bool asIndex = true)
    {
        var image = Image.Create(layers, config with
        {
            Env = config.Env ?? [TestImageSet.DefaultPath],
            Labels = new() { [StandInLabel] = upstream },
        });
        return new TestImage(repository, tags, asIndex ? ImageIndex.Create([image]) : image);
    }

    private static Layer NginxLayer() => new LayerBuilder()
        .File("/usr/sbin/nginx", NginxScript, FileModes.Mode0755)
        .File("/etc/nginx/conf.d/default.conf", NginxSiteConfig(80))
        .File("/usr/share/nginx/html/index.html", "<html><body><h1>Welcome to nginx!</h1></body></html>\n")
        .Directory("/var/run")
        .Build();

    private static string NginxSiteConfig(int port) => $$"""
        server {
            listen {{port}};
            location / {
                root /usr/share/nginx/html;
            }
        }

        """;

    /// <summary>
    /// Re-execs itself so /proc/PID/cmdline holds "master process" (ContainerPID spec) while the
    /// process keeps the name nginx (pidof, HostPID spec); traps TERM/INT/QUIT to stop as PID 1.
    /// </summary>
    private const string NginxScript = """
        #!/bin/sh
        # nginx stand-in: busybox httpd on the port of the listen line of default.conf.
        case "$1" in
            "master process"*) ;;
            *) exec "$0" "master process nginx $*" ;;
        esac
        port=$(sed -n 's/^[[:space:]]*listen[[:space:]]*\([0-9]*\).*/\1/p' /etc/nginx/conf.d/default.conf | head -n 1)
        echo $$ > /var/run/nginx.pid
        httpd -f -p "${port:-80}" -h /usr/share/nginx/html &
        child=$!
        trap 'kill $child 2>/dev/null; exit 0' TERM INT QUIT
        wait $child

        """;

    private static Layer HttpdLayer() => new LayerBuilder()
        .File("/usr/local/bin/httpd-foreground", """
            #!/bin/sh
            # httpd stand-in: critest's log spec looks for "httpd" in the container's output.
            echo "httpd: busybox httpd stand-in for Apache httpd 2.4.39 on :80" >&2
            httpd -f -v -p 80 -h /usr/local/apache2/htdocs &
            child=$!
            trap 'kill $child 2>/dev/null; exit 0' TERM INT WINCH
            wait $child

            """, FileModes.Mode0755)
        .File("/usr/local/apache2/htdocs/index.html", "<html><body><h1>It works!</h1></body></html>\n")
        .Build();

    /// <summary>SupplementalGroupsPolicy specs expect <c>id -G</c> = "1000 1234 50000" (Merge) or "1000 1234" (Strict).</summary>
    private static Layer PredefinedGroupLayer()
    {
        string passwd = BaseLayers.Passwd + "default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n";
        return new LayerBuilder()
            .File("/etc/passwd", passwd)
            .File("/etc/group", BaseLayers.Group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
            .File("/etc/shadow", BaseLayers.Shadow(passwd), FileModes.Mode0640)
            .Directory("/home/default-user", uid: 1000, gid: 1000)
            .Build();
    }

    private static byte[] CompileStatic(string source)
    {
        string directory = Directory.CreateTempSubdirectory("crishim-cc-").FullName;
        try
        {
            string input = Path.Combine(directory, "main.c"), output = Path.Combine(directory, "main");
            File.WriteAllText(input, source);
            // -s drops the symbol table, which would otherwise name the temp dir and break determinism.
            HostCommand.Output("gcc", "-static", "-O2", "-s", "-o", output, input);
            return File.ReadAllBytes(output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Sleeps, reaps children, exits 0 on SIGINT/SIGTERM: what the sandbox's pause does.</summary>
    private const string PauseSource = """
        #include <signal.h>
        #include <sys/wait.h>
        #include <unistd.h>

        static void stop(int signal) { (void)signal; _exit(0); }
        static void reap(int signal) { (void)signal; while (waitpid(-1, 0, WNOHANG) > 0) {} }

        int main(void) {
            struct sigaction action = {0};
            action.sa_handler = stop;
            sigaction(SIGINT, &action, 0);
            sigaction(SIGTERM, &action, 0);
            action.sa_handler = reap;
            action.sa_flags = SA_NOCLDSTOP | SA_RESTART;
            sigaction(SIGCHLD, &action, 0);
            for (;;) pause();
        }
        """;

    private const string NnpSource = """
        #include <stdio.h>
        #include <unistd.h>

        int main(void) {
            printf("Effective uid: %d\n", (int)geteuid());
            return 0;
        }
        """;
}
