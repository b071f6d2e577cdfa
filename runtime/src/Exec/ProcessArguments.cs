using System.Text;

namespace CriShim.Runtime.Exec;

/// <summary>
/// What execve(2) accepts as a command line, checked before a client's command reaches a runtime:
/// a longer argument or a NUL inside one would fail the exec (E2BIG) or silently cut the argument.
/// </summary>
public static class ProcessArguments
{
    /// <summary>Linux's MAX_ARG_STRLEN (32 pages), terminating NUL included.</summary>
    public const int MaxArgumentBytes = 128 * 1024;

    /// <summary>Well under ARG_MAX (2 MiB with the default stack limit), leaving room for the environment and the runtime's own arguments.</summary>
    public const int MaxTotalBytes = 1024 * 1024;

    /// <summary>Throws InvalidRequestException naming <paramref name="field"/> when the command cannot be executed as given.</summary>
    public static void Validate(IReadOnlyList<string> command, string field)
    {
        if (command.Count == 0) throw new InvalidRequestException($"{field} must not be empty");
        long total = 0;
        for (int i = 0; i < command.Count; i++)
        {
            string argument = command[i];
            if (argument.Contains('\0')) throw new InvalidRequestException($"{field}[{i}] contains a NUL character");
            int bytes = Encoding.UTF8.GetByteCount(argument) + 1;
            if (bytes > MaxArgumentBytes) throw new InvalidRequestException($"{field}[{i}] is {bytes} bytes long; an argument may have at most {MaxArgumentBytes - 1}");
            total += bytes;
        }
        if (total > MaxTotalBytes) throw new InvalidRequestException($"{field} is {total} bytes long; a command line may have at most {MaxTotalBytes}");
    }
}
