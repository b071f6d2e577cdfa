namespace CriShim.Runtime.Oci;

/// <summary>Signal names as images and the CRI give them, to numbers.</summary>
public static class Signals
{
    private static readonly Dictionary<string, int> ByName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["ILL"] = 4, ["TRAP"] = 5, ["ABRT"] = 6, ["IOT"] = 6, ["BUS"] = 7,
        ["FPE"] = 8, ["KILL"] = 9, ["USR1"] = 10, ["SEGV"] = 11, ["USR2"] = 12, ["PIPE"] = 13, ["ALRM"] = 14,
        ["TERM"] = 15, ["STKFLT"] = 16, ["CHLD"] = 17, ["CLD"] = 17, ["CONT"] = 18, ["STOP"] = 19, ["TSTP"] = 20,
        ["TTIN"] = 21, ["TTOU"] = 22, ["URG"] = 23, ["XCPU"] = 24, ["XFSZ"] = 25, ["VTALRM"] = 26, ["PROF"] = 27,
        ["WINCH"] = 28, ["IO"] = 29, ["POLL"] = 29, ["PWR"] = 30, ["SYS"] = 31, ["RTMIN"] = 34, ["RTMAX"] = 64,
    };

    public const int Term = 15;
    public const int Kill = 9;

    /// <summary>Parses "SIGTERM", "TERM" or "15"; unknown names are an InvalidRequestException.</summary>
    public static int Parse(string signal)
    {
        if (int.TryParse(signal, out int number) && number is > 0 and < 65) return number;
        string name = signal.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? signal[3..] : signal;
        return ByName.TryGetValue(name, out int value) ? value : throw new InvalidRequestException($"unknown signal \"{signal}\"");
    }
}
