using System.Text;
using Runtime.V1;

namespace CriShim.Runtime.Pods;

/// <summary>The /etc files a pod's containers share: hostname, hosts and resolv.conf.</summary>
public static class PodFiles
{
    public static string Hostname(string podDir) => Path.Combine(podDir, "hostname");
    public static string Hosts(string podDir) => Path.Combine(podDir, "hosts");
    public static string ResolvConf(string podDir) => Path.Combine(podDir, "resolv.conf");

    public static void Write(string podDir, string hostname, DNSConfig? dns, bool hostNetwork)
    {
        CriShim.Runtime.Store.StateDirectory.Create(podDir);
        Write(Hostname(podDir), hostname + "\n");
        if (hostNetwork)
        {
            Write(Hosts(podDir), File.ReadAllText("/etc/hosts"));
        }
        else
        {
            Write(Hosts(podDir), $"""
                127.0.0.1	localhost
                ::1	localhost ip6-localhost ip6-loopback
                fe00::0	ip6-localnet
                ff00::0	ip6-mcastprefix
                ff02::1	ip6-allnodes
                ff02::2	ip6-allrouters
                127.0.1.1	{hostname}

                """);
        }
        if (dns is not null && (dns.Servers.Count > 0 || dns.Searches.Count > 0 || dns.Options.Count > 0))
        {
            Write(ResolvConf(podDir), ResolvConfText(dns));
        }
        else if (File.Exists("/etc/resolv.conf"))
        {
            Write(ResolvConf(podDir), File.ReadAllText("/etc/resolv.conf"));
        }
        else
        {
            Write(ResolvConf(podDir), "");
        }
    }

    /// <summary>0644: bound into the pod's containers, where processes of any user read them.</summary>
    private static void Write(string path, string content) =>
        CriShim.Runtime.Store.AtomicFile.Write(path, Encoding.UTF8.GetBytes(content), UnixFileMode.UserRead | UnixFileMode.UserWrite |
            UnixFileMode.GroupRead | UnixFileMode.OtherRead);

    public static string ResolvConfText(DNSConfig dns)
    {
        var text = new StringBuilder();
        if (dns.Searches.Count > 0) text.Append("search ").AppendJoin(' ', dns.Searches).Append('\n');
        foreach (string server in dns.Servers) text.Append("nameserver ").Append(server).Append('\n');
        if (dns.Options.Count > 0) text.Append("options ").AppendJoin(' ', dns.Options).Append('\n');
        return text.ToString();
    }
}
