namespace CriShim.Integration.Harness;

/// <summary>A fact that is reported skipped, not passed, when the tool it checks against is not on PATH.</summary>
public sealed class FactNeedingToolAttribute : FactAttribute
{
    public FactNeedingToolAttribute(string tool)
    {
        bool present = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, tool)));
        if (!present) Skip = $"{tool} is not installed";
    }
}
