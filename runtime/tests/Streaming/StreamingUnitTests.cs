using System.Text;
using System.Text.Json;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Streaming;

namespace CriShim.Runtime.Tests.Streaming;

public class StreamingTokenCacheTests
{
    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly ExecStreamRequest Request = new("c1", ["echo", "hi"], false, false, true, true);

    [Fact]
    public void ATokenIsUrlSafeAndWorksOnce()
    {
        var cache = new StreamingTokenCache(new ManualTime());
        string token = cache.Insert(Request);
        Assert.Matches("^[A-Za-z0-9_-]{11}$", token);
        Assert.Same(Request, cache.Consume(token));
        Assert.Null(cache.Consume(token));
        Assert.Null(cache.Consume("never-issued"));
    }

    [Fact]
    public void ATokenExpiresAfterAMinute()
    {
        var time = new ManualTime();
        var cache = new StreamingTokenCache(time);
        string fresh = cache.Insert(Request);
        string stale = cache.Insert(Request);
        time.Now += TimeSpan.FromSeconds(59);
        Assert.NotNull(cache.Consume(fresh));
        time.Now += TimeSpan.FromSeconds(2);
        Assert.Null(cache.Consume(stale));
    }

    [Fact]
    public void TheCacheIsBoundedAndEvictsExpiredEntries()
    {
        var time = new ManualTime();
        var cache = new StreamingTokenCache(time);
        for (int i = 0; i < StreamingTokenCache.MaxInFlight; i++) cache.Insert(Request);
        Assert.Throws<InvalidOperationException>(() => cache.Insert(Request));
        time.Now += StreamingTokenCache.Ttl;
        cache.Insert(Request);
        Assert.Equal(1, cache.Count);
    }
}

public class RemoteCommandStatusTests
{
    [Fact]
    public void SuccessIsAStatusSuccess()
    {
        using var json = JsonDocument.Parse(RemoteCommandStatus.V4Json(new RemoteCommandResult(0)));
        Assert.Equal("Success", json.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public void ANonZeroExitCarriesTheCodeAsTheExitCodeCause()
    {
        using var json = JsonDocument.Parse(RemoteCommandStatus.V4Json(new RemoteCommandResult(42), ["false"]));
        var root = json.RootElement;
        Assert.Equal("Failure", root.GetProperty("status").GetString());
        Assert.Equal("NonZeroExitCode", root.GetProperty("reason").GetString());
        var cause = root.GetProperty("details").GetProperty("causes")[0];
        Assert.Equal("ExitCode", cause.GetProperty("reason").GetString());
        Assert.Equal("42", cause.GetProperty("message").GetString());
    }

    [Fact]
    public void AnErrorIsAFailureWithItsMessage()
    {
        using var json = JsonDocument.Parse(RemoteCommandStatus.V4Json(RemoteCommandResult.Failed("container gone")));
        Assert.Equal("Failure", json.RootElement.GetProperty("status").GetString());
        Assert.Equal("container gone", json.RootElement.GetProperty("message").GetString());
        Assert.Null(RemoteCommandStatus.LegacyText(new RemoteCommandResult(0)));
        Assert.Equal("container gone", Encoding.UTF8.GetString(RemoteCommandStatus.LegacyText(RemoteCommandResult.Failed("container gone"))!));
    }
}

public class TerminalSizeDecoderTests
{
    [Fact]
    public void DecodesSplitAndConcatenatedMessages()
    {
        var decoder = new TerminalSizeDecoder();
        Assert.Empty(decoder.Feed("""{"Width":80,"""u8));
        Assert.Equal([new TerminalSize(80, 24), new TerminalSize(120, 40)], decoder.Feed("""  "Height":24}{"Width":120,"Height":40}"""u8).ToList());
    }

    [Fact]
    public void IgnoresNonsense()
    {
        var decoder = new TerminalSizeDecoder();
        Assert.Empty(decoder.Feed("""{"Width":0,"Height":24}{"nope"}"""u8));
    }
}

public class SpdyZlibTests
{
    [Fact]
    public void HeaderBlocksRoundTripThroughOneSharedStreamWithTheDictionary()
    {
        byte[] dictionary = Encoding.ASCII.GetBytes("streamtypeerrorstdinstdout");
        using var deflater = new CriShim.NativeInterop.ZlibDeflater(dictionary);
        using var inflater = new CriShim.NativeInterop.ZlibInflater(dictionary);
        foreach (string text in new[] { "streamtype: error", "streamtype: stdout", "port: 8080 requestid: 0" })
        {
            byte[] block = deflater.Deflate(Encoding.ASCII.GetBytes(text));
            Assert.Equal(text, Encoding.ASCII.GetString(inflater.Inflate(block, 1024)));
        }
    }
}
