using System.Diagnostics;
using System.Net;
using CriShim.TestImages;

// dotnet run --project integration/TestImages -- --registry HOST:PORT [--critest] [--big] [--user NAME --password PASS]
string? registry = null;
NetworkCredential? credentials = null;
bool critest = false, big = false;
string? user = null, password = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--registry" when i + 1 < args.Length: registry = args[++i]; break;
        case "--user" when i + 1 < args.Length: user = args[++i]; break;
        case "--password" when i + 1 < args.Length: password = args[++i]; break;
        case "--critest": critest = true; break;
        case "--big": big = true; break;
        default:
            Console.Error.WriteLine($"test-images: unexpected argument '{args[i]}'");
            Console.Error.WriteLine("usage: test-images --registry HOST:PORT [--critest] [--big] [--user NAME --password PASS]");
            return 2;
    }
}
if (registry is null)
{
    Console.Error.WriteLine("test-images: --registry HOST:PORT is required");
    return 2;
}
if (user is not null) credentials = new NetworkCredential(user, password ?? "");

var clock = Stopwatch.StartNew();
var images = TestImageSet.Standard().ToList();
if (big) images.AddRange(TestImageSet.Big());
if (critest) images.AddRange(CritestImageSet.Build());
Console.WriteLine($"built {images.Count} repositories in {clock.Elapsed.TotalSeconds:F1}s");

clock.Restart();
using var client = new RegistryClient(registry, credentials);
await client.PushAsync(images);
foreach (var image in images)
{
    foreach (string name in image.Names) Console.WriteLine($"{registry}/{name}\t{image.ManifestDigest}");
}
Console.WriteLine($"pushed to {registry} in {clock.Elapsed.TotalSeconds:F1}s");
return 0;
