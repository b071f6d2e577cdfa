using Tomlyn.Model;

namespace CriShim.Runtime.Config;

/// <summary>
/// Reads one TOML table into typed values, naming the full key in every error and
/// refusing keys nobody asked for, so a typo stops start-up instead of being ignored.
/// </summary>
internal sealed class TomlSection(TomlTable table, string path)
{
    private readonly HashSet<string> _read = [];

    private string KeyPath(string key) => path.Length == 0 ? key : $"{path}.{key}";

    private bool TryGet(string key, out object value)
    {
        _read.Add(key);
        return table.TryGetValue(key, out value!);
    }

    private ConfigException WrongType(string key, string expected, object value) =>
        new($"{KeyPath(key)}: expected {expected}, got {Describe(value)}");

    private static string Describe(object value) => value switch
    {
        string s => $"the string \"{s}\"",
        long l => $"the integer {l}",
        bool b => $"the boolean {(b ? "true" : "false")}",
        TomlTable => "a table",
        TomlArray or TomlTableArray => "an array",
        _ => value.GetType().Name,
    };

    public string String(string key, string current) =>
        !TryGet(key, out var value) ? current : value as string ?? throw WrongType(key, "a string", value);

    public string OneOf(string key, string current, params string[] allowed)
    {
        string value = String(key, current);
        return allowed.Contains(value)
            ? value
            : throw new ConfigException($"{KeyPath(key)}: \"{value}\" is not one of {string.Join(", ", allowed.Select(a => $"\"{a}\""))}");
    }

    public string AbsolutePath(string key, string current, bool allowEmpty = false)
    {
        string value = String(key, current);
        if (allowEmpty && value.Length == 0) return value;
        return System.IO.Path.IsPathRooted(value)
            ? value
            : throw new ConfigException($"{KeyPath(key)}: \"{value}\" is not an absolute path");
    }

    public bool Bool(string key, bool current) =>
        !TryGet(key, out var value) ? current : value is bool b ? b : throw WrongType(key, "a boolean", value);

    public int Int(string key, int current, int min, int max)
    {
        if (!TryGet(key, out var value)) return current;
        if (value is not long l) throw WrongType(key, "an integer", value);
        return l >= min && l <= max
            ? (int)l
            : throw new ConfigException($"{KeyPath(key)}: {l} is out of range [{min}, {max}]");
    }

    public List<string> StringList(string key, List<string> current)
    {
        if (!TryGet(key, out var value)) return current;
        if (value is not TomlArray array) throw WrongType(key, "an array of strings", value);
        return array.Select((item, i) => item as string
            ?? throw new ConfigException($"{KeyPath(key)}[{i}]: expected a string, got {Describe(item!)}")).ToList();
    }

    public TomlSection? Table(string key)
    {
        if (!TryGet(key, out var value)) return null;
        return value is TomlTable t ? new TomlSection(t, KeyPath(key)) : throw WrongType(key, "a table", value);
    }

    /// <summary>A table whose keys are names the user picks (handlers, registry hosts).</summary>
    public IEnumerable<string> NamedKeys(string key)
    {
        if (!TryGet(key, out var value)) return [];
        return value is TomlTable t ? t.Keys.ToList() : throw WrongType(key, "a table", value);
    }

    public TomlSection Named(string key, string name) =>
        new TomlSection((TomlTable)table[key], KeyPath(key)).Table(name)!;

    public List<string> NamedStringList(string key, string name) =>
        new TomlSection((TomlTable)table[key], KeyPath(key)).StringList(name, []);

    /// <summary>Call after reading every known key.</summary>
    public void RejectUnknownKeys()
    {
        foreach (string key in table.Keys)
        {
            if (!_read.Contains(key)) throw new ConfigException($"unknown key '{KeyPath(key)}'");
        }
    }
}
