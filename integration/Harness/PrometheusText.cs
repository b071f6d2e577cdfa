using System.Globalization;
using System.Text;

namespace CriShim.Integration.Harness;

/// <summary>
/// A strict reader of the Prometheus text exposition format (0.0.4), so a test fails on any output a
/// Prometheus server would refuse or misread: every sample belongs to the family its TYPE line declared
/// just before, no family or series appears twice, label values use only the three escapes, and a
/// histogram's buckets are cumulative, end in le="+Inf" and agree with its _count.
/// </summary>
public sealed class PrometheusText
{
    public sealed record Family(string Name, string Type, string Help);

    public Dictionary<string, Family> Families { get; } = [];

    /// <summary>Samples by name and their labels rendered sorted: name{a="x",b="y"}.</summary>
    public Dictionary<string, double> Samples { get; } = [];

    private readonly List<(string Name, Dictionary<string, string> Labels, double Value)> _parsed = [];

    public static PrometheusText Parse(string text)
    {
        var parsed = new PrometheusText();
        if (text.Length > 0 && !text.EndsWith('\n')) throw new FormatException("the exposition does not end with a newline");
        string? help = null, helpName = null;
        Family? current = null;
        int number = 0;
        foreach (string line in text.Split('\n')[..^1])
        {
            number++;
            string Where() => $"line {number} \"{line}\"";
            if (line.Length == 0) throw new FormatException($"{Where()}: empty line");
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                string rest = line["# HELP ".Length..];
                int space = rest.IndexOf(' ');
                helpName = space < 0 ? rest : rest[..space];
                help = space < 0 ? "" : Unescape(rest[(space + 1)..], allowQuote: false, Where);
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                if (parts.Length != 4) throw new FormatException($"{Where()}: malformed TYPE line");
                string name = parts[2];
                RequireName(name, Where);
                if (parts[3] is not ("counter" or "gauge" or "histogram" or "summary" or "untyped")) throw new FormatException($"{Where()}: unknown type");
                if (parsed.Families.ContainsKey(name)) throw new FormatException($"{Where()}: family {name} declared twice");
                if (helpName != name) throw new FormatException($"{Where()}: no HELP line for {name} right before its TYPE");
                current = parsed.Families[name] = new Family(name, parts[3], help!);
                continue;
            }
            if (line.StartsWith('#')) throw new FormatException($"{Where()}: unexpected comment");
            var (sampleName, labels, value) = ParseSample(line, Where);
            if (current is null || !BelongsTo(sampleName, current)) throw new FormatException($"{Where()}: sample outside its family's block");
            if (current.Type == "histogram" && sampleName.EndsWith("_bucket", StringComparison.Ordinal) != labels.ContainsKey("le"))
            {
                throw new FormatException($"{Where()}: le belongs on histogram buckets only");
            }
            string key = Key(sampleName, labels);
            if (!parsed.Samples.TryAdd(key, value)) throw new FormatException($"{Where()}: series {key} appears twice");
            parsed._parsed.Add((sampleName, labels, value));
        }
        parsed.CheckHistograms();
        return parsed;
    }

    public static string Key(string name, IReadOnlyDictionary<string, string> labels) =>
        labels.Count == 0 ? name : $"{name}{{{string.Join(",", labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\""))}}}";

    public double Value(string name, params (string Label, string Value)[] labels) =>
        Samples.TryGetValue(Key(name, labels.ToDictionary(l => l.Label, l => l.Value)), out double value)
            ? value
            : throw new KeyNotFoundException($"no sample {Key(name, labels.ToDictionary(l => l.Label, l => l.Value))} in:\n{string.Join("\n", Samples.Keys)}");

    private static bool BelongsTo(string sample, Family family) => family.Type == "histogram"
        ? sample == family.Name + "_bucket" || sample == family.Name + "_sum" || sample == family.Name + "_count"
        : sample == family.Name;

    private void CheckHistograms()
    {
        foreach (var family in Families.Values.Where(f => f.Type == "histogram"))
        {
            var buckets = _parsed.Where(s => s.Name == family.Name + "_bucket")
                .Select(s => (s.Labels, Count: s.Value))
                .GroupBy(b => Key("", b.Labels.Where(l => l.Key != "le").ToDictionary()));
            foreach (var series in buckets)
            {
                var ordered = series.Select(b => (Le: ParseValue(b.Labels["le"], () => series.Key), b.Count)).OrderBy(b => b.Le).ToList();
                if (!double.IsPositiveInfinity(ordered[^1].Le)) throw new FormatException($"{family.Name}{series.Key}: no +Inf bucket");
                for (int i = 1; i < ordered.Count; i++)
                {
                    if (ordered[i].Count < ordered[i - 1].Count) throw new FormatException($"{family.Name}{series.Key}: buckets are not cumulative");
                }
                string labels = series.Key;
                if (!Samples.TryGetValue(family.Name + "_count" + labels, out double count) || !Samples.ContainsKey(family.Name + "_sum" + labels))
                {
                    throw new FormatException($"{family.Name}{labels}: _sum or _count missing");
                }
                if (count != ordered[^1].Count) throw new FormatException($"{family.Name}{labels}: +Inf bucket {ordered[^1].Count} != _count {count}");
            }
        }
    }

    private static (string Name, Dictionary<string, string> Labels, double Value) ParseSample(string line, Func<string> where)
    {
        int i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
        string name = line[..i];
        RequireName(name, where);
        var labels = new Dictionary<string, string>();
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                int start = i;
                while (i < line.Length && line[i] != '=') i++;
                string label = line[start..i];
                if (label.Length == 0 || label.StartsWith("__", StringComparison.Ordinal) || !label.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') || char.IsAsciiDigit(label[0]))
                {
                    throw new FormatException($"{where()}: bad label name \"{label}\"");
                }
                if (i + 1 >= line.Length || line[i + 1] != '"') throw new FormatException($"{where()}: label value not quoted");
                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException($"{where()}: unterminated label value");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c == '\\')
                    {
                        if (i >= line.Length) throw new FormatException($"{where()}: dangling escape");
                        value.Append(line[i++] switch { '\\' => '\\', '"' => '"', 'n' => '\n', var other => throw new FormatException($"{where()}: bad escape \\{other}") });
                        continue;
                    }
                    value.Append(c);
                }
                if (!labels.TryAdd(label, value.ToString())) throw new FormatException($"{where()}: label {label} twice");
                if (i < line.Length && line[i] == ',') { i++; continue; }
                if (i < line.Length && line[i] == '}') { i++; break; }
                throw new FormatException($"{where()}: expected , or }} after a label");
            }
        }
        if (i >= line.Length || line[i] != ' ') throw new FormatException($"{where()}: no space before the value");
        string rest = line[(i + 1)..];
        if (rest.Contains(' ')) throw new FormatException($"{where()}: timestamps are not expected");
        return (name, labels, ParseValue(rest, where));
    }

    private static double ParseValue(string text, Func<string> where) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"{where()}: \"{text}\" is no number"),
    };

    private static void RequireName(string name, Func<string> where)
    {
        if (name.Length == 0 || char.IsAsciiDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':'))
        {
            throw new FormatException($"{where()}: bad metric name \"{name}\"");
        }
    }

    private static string Unescape(string text, bool allowQuote, Func<string> where)
    {
        var result = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\') { result.Append(text[i]); continue; }
            if (++i >= text.Length) throw new FormatException($"{where()}: dangling escape");
            result.Append(text[i] switch { '\\' => '\\', 'n' => '\n', '"' when allowQuote => '"', var other => throw new FormatException($"{where()}: bad escape \\{other}") });
        }
        return result.ToString();
    }
}
