using System.Text.RegularExpressions;

namespace CriShim.Integration.Harness;

/// <summary>
/// The log of a container that counts in a shell variable (memory, not a file) and prints "count N" at each step:
/// what a restored container must continue, read while conmon still writes it.
/// </summary>
public static partial class CounterLog
{
    [GeneratedRegex(@" count (\d+)$")]
    private static partial Regex CountLine();

    /// <summary>Every count printed in <paramref name="log"/>, in order.</summary>
    public static List<long> Counts(string log) =>
        [.. log.Split('\n').Select(l => CountLine().Match(l)).Where(m => m.Success).Select(m => long.Parse(m.Groups[1].Value))];

    /// <summary>The whole file, opened beside the writer that still appends to it.</summary>
    public static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }
}
