using System.Collections;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace CriShim.Integration.Harness;

/// <summary>
/// Builds CRI requests full of malformed and extreme values from a seeded <see cref="Random"/>, by
/// walking the protobuf descriptors, so every field of every message (also ones added later) gets
/// them: empty and huge strings, path tricks, NUL bytes, undefined enum values, huge repeated fields
/// and maps, negative and maximal numbers, nesting down to the leaves. Field values that the daemon
/// turns into host paths it writes or creates are kept inside <see cref="HostileValues.Sandbox"/>, so
/// a daemon that honours them cannot damage the machine running the test.
/// </summary>
public sealed class HostileMessages(Random random, HostileValues values)
{
    /// <summary>Under the daemon's 16 MiB receive limit with room for everything else in the message.</summary>
    private const int MaxHugeStringLength = 8 * 1024 * 1024;
    private const int MaxDepth = 8;

    /// <summary>Elements of huge repeated fields and maps in one request, so building it stays quick.</summary>
    private const int BulkBudget = 20_000;

    /// <summary>One string of megabytes in some requests: each costs time to build, send and parse.</summary>
    private bool _hugeStringLeft;
    private int _bulkBudget;

    /// <summary>A request of <paramref name="descriptor"/>'s type with random fields set to hostile values.</summary>
    public IMessage Create(MessageDescriptor descriptor)
    {
        _hugeStringLeft = random.Next(15) == 0;
        _bulkBudget = BulkBudget;
        return Build(descriptor, depth: 0);
    }

    /// <summary>Sets a few randomly chosen fields, at any depth, of a valid request to hostile values.</summary>
    public IMessage Mutate(IMessage template)
    {
        _hugeStringLeft = random.Next(15) == 0;
        _bulkBudget = BulkBudget;
        var message = template.Descriptor.Parser.ParseFrom(template.ToByteString());
        int mutations = 1 + random.Next(3);
        for (int i = 0; i < mutations; i++) MutateOne(message, depth: 0);
        return message;
    }

    /// <summary>
    /// Bytes no well-behaved client sends: the request cut short, bytes flipped, or wrapped in more
    /// nested groups than the parser's recursion limit.
    /// </summary>
    public byte[] Corrupt(byte[] request)
    {
        switch (random.Next(3))
        {
            case 0:
                return request.Length == 0 ? [0x0A, 0x05, 0x41] : request[..random.Next(request.Length)];
            case 1:
                var flipped = request.Length == 0 ? new byte[] { 0xFF, 0xFF, 0xFF } : (byte[])request.Clone();
                for (int i = 0; i < 1 + flipped.Length / 16; i++) flipped[random.Next(flipped.Length)] = (byte)random.Next(256);
                return flipped;
            default:
                // Field 15 as a start-group (wire type 3) tag 200 times: unknown fields the parser must skip recursively.
                const int depth = 200;
                var nested = new List<byte>(request);
                for (int i = 0; i < depth; i++) nested.Add((15 << 3) | 3);
                for (int i = 0; i < depth; i++) nested.Add((15 << 3) | 4);
                return [.. nested];
        }
    }

    private IMessage Build(MessageDescriptor descriptor, int depth)
    {
        var message = (IMessage)Activator.CreateInstance(descriptor.ClrType)!;
        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            // Most fields set, some left at their defaults, as a kubelet leaves most of a config empty.
            if (random.Next(3) == 0) continue;
            SetField(message, field, depth);
        }
        return message;
    }

    private void MutateOne(IMessage message, int depth)
    {
        var fields = message.Descriptor.Fields.InDeclarationOrder();
        if (fields.Count == 0) return;
        var field = fields[random.Next(fields.Count)];
        // Go deeper into a message field that is already set, so a valid template keeps most of its shape.
        if (field is { FieldType: FieldType.Message, IsRepeated: false } && field.Accessor.GetValue(message) is IMessage nested
            && depth < MaxDepth && random.Next(3) != 0)
        {
            MutateOne(nested, depth + 1);
            return;
        }
        if (field.IsRepeated && !field.IsMap && field.Accessor.GetValue(message) is IList { Count: > 0 } list
            && list[0] is IMessage && random.Next(2) == 0)
        {
            MutateOne((IMessage)list[random.Next(list.Count)]!, depth + 1);
            return;
        }
        field.Accessor.Clear(message);
        SetField(message, field, depth);
    }

    private void SetField(IMessage message, FieldDescriptor field, int depth)
    {
        if (field.IsMap)
        {
            var map = (IDictionary)field.Accessor.GetValue(message);
            var keyField = field.MessageType.FindFieldByNumber(1);
            var valueField = field.MessageType.FindFieldByNumber(2);
            int count = Count(cheapElements: valueField.FieldType != FieldType.Message);
            for (int i = 0; i < count; i++)
            {
                object key = count > 64 ? Convert(keyField, $"k{i}") : Value(keyField, depth);
                map[key] = count > 64 && valueField.FieldType != FieldType.Message ? Convert(valueField, $"v{i}") : Value(valueField, depth);
            }
        }
        else if (field.IsRepeated)
        {
            var list = (IList)field.Accessor.GetValue(message);
            int count = Count(cheapElements: field.FieldType != FieldType.Message);
            for (int i = 0; i < count; i++)
            {
                list.Add(count > 64 ? Cheap(field, i) : Value(field, depth));
            }
        }
        else
        {
            field.Accessor.SetValue(message, Value(field, depth));
        }
    }

    /// <summary>
    /// Mostly a few elements; now and then thousands, while the request's budget for them lasts. Few
    /// of a message type, since each of those is built down to the leaves.
    /// </summary>
    private int Count(bool cheapElements)
    {
        if (random.Next(30) == 0 && _bulkBudget > 0)
        {
            int bulk = cheapElements ? 5_000 + random.Next(15_000) : 500 + random.Next(1_500);
            _bulkBudget -= bulk;
            return bulk;
        }
        return random.Next(cheapElements ? 6 : 3);
    }

    private object Cheap(FieldDescriptor field, int index) => field.FieldType switch
    {
        FieldType.Message => Activator.CreateInstance(field.MessageType.ClrType)!,
        FieldType.String or FieldType.Bytes => Convert(field, $"x{index}"),
        _ => Value(field, MaxDepth),
    };

    private static object Convert(FieldDescriptor field, string text) => field.FieldType switch
    {
        FieldType.Bytes => ByteString.CopyFromUtf8(text),
        FieldType.String => text,
        _ => throw new ArgumentException($"{field.FullName} is no string field"),
    };

    private object Value(FieldDescriptor field, int depth) => field.FieldType switch
    {
        FieldType.String => NextString(field),
        FieldType.Bytes => NextBytes(),
        FieldType.Bool => random.Next(2) == 0,
        FieldType.Enum => NextEnum(field),
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => Pick(0, -1, 1, int.MinValue, int.MaxValue, random.Next(int.MinValue, int.MaxValue)),
        FieldType.UInt32 or FieldType.Fixed32 => Pick(0u, 1u, uint.MaxValue, (uint)random.NextInt64(uint.MaxValue)),
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => Pick(0L, -1L, 1L, long.MinValue, long.MaxValue, random.NextInt64(long.MinValue, long.MaxValue)),
        FieldType.UInt64 or FieldType.Fixed64 => Pick(0UL, 1UL, ulong.MaxValue, (ulong)random.NextInt64(long.MaxValue)),
        FieldType.Double => Pick(0d, -1d, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.MaxValue, double.Epsilon),
        FieldType.Float => Pick(0f, -1f, float.NaN, float.PositiveInfinity, float.MaxValue, float.Epsilon),
        FieldType.Message => depth >= MaxDepth ? Activator.CreateInstance(field.MessageType.ClrType)! : Build(field.MessageType, depth + 1),
        _ => throw new NotSupportedException($"{field.FullName}: protobuf type {field.FieldType}"),
    };

    private T Pick<T>(params T[] choices) => choices[random.Next(choices.Length)];

    private object NextEnum(FieldDescriptor field)
    {
        var defined = field.EnumType.Values;
        int number = random.Next(3) == 0
            ? Pick(-1, defined.Max(v => v.Number) + 1, 12345, int.MinValue, int.MaxValue)
            : defined[random.Next(defined.Count)].Number;
        return Enum.ToObject(field.EnumType.ClrType, number);
    }

    private string NextString(FieldDescriptor field)
    {
        if (_hugeStringLeft && random.Next(10) == 0)
        {
            _hugeStringLeft = false;
            return values.Sandboxed(field, new string((char)('a' + random.Next(26)), 1 + random.Next(MaxHugeStringLength)));
        }
        return values.Sandboxed(field, values.Next(field));
    }

    private ByteString NextBytes() => random.Next(4) switch
    {
        0 => ByteString.Empty,
        1 => ByteString.CopyFrom([0, 0xFF, 0xFE, 0x80, 0xC0]),
        2 => ByteString.CopyFromUtf8(values.Next(null)),
        _ => ByteString.CopyFrom(RandomBytes(random.Next(4096))),
    };

    private byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}

/// <summary>
/// The strings <see cref="HostileMessages"/> draws from: tricks, junk, and names of what really
/// exists in the daemon (ids, images), so requests also reach real objects.
/// </summary>
public sealed class HostileValues(Random random, string sandbox, string closedRegistry, string registry)
{
    /// <summary>
    /// Fields the daemon joins into host paths it creates or writes (log files, bind mount sources it
    /// creates, checkpoint archives): an absolute value is moved under <see cref="Sandbox"/>.
    /// </summary>
    private static readonly HashSet<string> HostWritePaths =
        ["log_directory", "log_path", "host_path", "location", "output_path", "checkpoint_path"];

    /// <summary>How many ".." any one value may climb: the sandbox is deeper, so twice that stays inside it.</summary>
    public const int MaxClimb = 6;

    private static readonly string[] Tricks =
    [
        "", " ", "\t\r\n", "\0", "a\0b", "/\0/", ".", "..", "../..", "../../../../../..", "a/../../b", "./././.",
        "/", "//", "/proc/self/status", "/proc/self/fd/1", "/proc/self/cwd/escape", "/dev/zero", "/sys/kernel",
        "-1", "0", "99999999999999999999999", "-rf", "--help", "$(id)", "`id`", "%s%s%n", "{{.PodCIDR}}", "\u202eevil",
        "\uD800", "\uFFFF", "é", "x:y:z", "a=b", "a,b", "sha256:", "sha256:zz", "@", ":", "127.0.0.1:0", "[::1]", "10.0.0.0/33",
        "true", "sh", "crishim-it", new string('n', 255), new string('n', 256), new string('x', 4097), new string('/', 5000),
    ];

    private readonly List<string> _ids = [];
    private readonly List<string> _images = [];

    /// <summary>The directory absolute host-write paths are moved under; deeper than any value climbs.</summary>
    public string Sandbox { get; } = Path.Combine([sandbox, .. Enumerable.Repeat("d", 2 * MaxClimb + 1)]);

    /// <summary>Ids (also as prefixes) and image references of real objects, for the next requests to use now and then.</summary>
    public void SetKnown(IEnumerable<string> ids, IEnumerable<string> images)
    {
        _ids.Clear();
        foreach (string id in ids)
        {
            _ids.Add(id);
            _ids.Add(id[..12]);
        }
        _images.Clear();
        _images.AddRange(images);
    }

    public string Next(FieldDescriptor? field)
    {
        string name = field?.Name ?? "";
        if (name == "image") return random.Next(3) == 0 && _images.Count > 0 ? _images[random.Next(_images.Count)] : ImageName();
        if (_ids.Count > 0 && random.Next(name.EndsWith("id", StringComparison.Ordinal) ? 2 : 10) == 0) return _ids[random.Next(_ids.Count)];
        return random.Next(3) switch
        {
            0 => Junk(),
            _ => Tricks[random.Next(Tricks.Length)],
        };
    }

    /// <summary>
    /// A reference to a registry that refuses connections or to the test registry, never one that
    /// resolves to docker.io: nothing here may reach out of the machine.
    /// </summary>
    public string ImageName() => random.Next(4) switch
    {
        0 => $"{closedRegistry}/{Junk().ToLowerInvariant()}",
        1 => $"{registry}/{Tricks[random.Next(Tricks.Length)]}",
        2 => $"{registry}/crishim-fuzz/{Junk()}:{Junk()}",
        _ => $"{registry}/crishim-fuzz/nothing@sha256:{new string('0', 64)}",
    };

    /// <summary>
    /// The cgroup every absolute cgroup_parent is moved under: the runtime creates the parents it is
    /// given in every controller, and the test removes them afterwards.
    /// </summary>
    public const string CgroupSandbox = "/crishim-fuzz";

    /// <summary>Absolute host-write paths go under the sandbox; relative log directories too, as the daemon may join them to its cwd.</summary>
    public string Sandboxed(FieldDescriptor field, string value)
    {
        if (field.Name == "cgroup_parent" && value.StartsWith('/')) return CgroupSandbox + value;
        if (!HostWritePaths.Contains(field.Name)) return value;
        if (value.StartsWith('/') || field.Name == "log_directory") return Sandbox + "/" + value;
        return value;
    }

    private string Junk()
    {
        const string alphabet = "abcXYZ019-_./:@%+=~ \\\"'`$;|&<>*?[]{}()#!\u00e9\u4e2d\u0001\u007f";
        var junk = new StringBuilder();
        for (int i = random.Next(1, 24); i > 0; i--) junk.Append(alphabet[random.Next(alphabet.Length)]);
        return junk.ToString();
    }
}
