using System.Text;
using System.Threading.Channels;
using CriShim.Runtime.Oci;
using CriShim.Runtime.Streaming;
using CriShim.Runtime.Tests.Lifecycle;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriShim.Runtime.Tests.Streaming;

/// <summary>The streaming Exec over the fake runtime: the client's streams reach the exec'd process through IOciRuntime.</summary>
public sealed class StreamingExecTests : IDisposable
{
    private readonly ServiceHarness _harness = new();
    private readonly StreamingService _streaming;

    public StreamingExecTests()
    {
        _harness.ReadyPod();
        _streaming = new StreamingService(new StreamingTokenCache(), new StreamingEndpointAddress(), _harness.Lookup, _harness.Pods,
            _harness.Handlers, _harness.Monitor, _harness.Paths, _harness.Ids, NullLogger<StreamingService>.Instance);
    }

    public void Dispose() => _harness.Dispose();

    [Fact]
    public async Task TheExecdProcessGetsTheClientsStreamsAndItsExitCodeComesBack()
    {
        await _harness.RunningContainerAsync("c1");
        var resizes = Channel.CreateUnbounded<TerminalSize>();
        resizes.Writer.TryWrite(new TerminalSize(120, 40));
        ExecStdio? seen = null;
        _harness.Runtime.AttachedExec = async (stdio, cancellationToken) =>
        {
            seen = stdio;
            string input = await new StreamReader(stdio.Stdin!).ReadToEndAsync(cancellationToken);
            await stdio.Stdout!.WriteAsync(Encoding.UTF8.GetBytes($"got {input}"), cancellationToken);
            return 3;
        };
        var stdout = new MemoryStream();
        var streams = new RemoteCommandStreams { Stdin = new MemoryStream("hello"u8.ToArray()), Stdout = stdout, Resizes = resizes.Reader };

        var result = await _streaming.ExecAsync(new ExecStreamRequest("c1", ["sh", "-c", "cat"], Tty: true, Stdin: true, Stdout: true, Stderr: false),
            streams, CancellationToken.None);

        Assert.Equal(new RemoteCommandResult(3), result);
        Assert.Equal("got hello", Encoding.UTF8.GetString(stdout.ToArray()));
        Assert.Contains("runtime.exec-attached c1 sh -c cat terminal=True", _harness.Log.Calls);
        Assert.True(seen!.Terminal);
        Assert.Null(seen.Stderr);
        Assert.True(seen.Resizes!.TryRead(out var size) && size == new TerminalSize(120, 40));
    }

    [Fact]
    public async Task AnExecInAContainerThatIsNotRunningFailsWithoutTheRuntime()
    {
        _harness.CreatedContainer("c1");
        _harness.Runtime.AttachedExec = (_, _) => Task.FromResult(0);

        var result = await _streaming.ExecAsync(new ExecStreamRequest("c1", ["true"], Tty: false, Stdin: false, Stdout: true, Stderr: false),
            new RemoteCommandStreams { Stdout = new MemoryStream() }, CancellationToken.None);

        Assert.Equal(-1, result.ExitCode);
        Assert.Contains("not running", result.Error);
        Assert.DoesNotContain(_harness.Log.Calls, e => e.StartsWith("runtime.exec-attached", StringComparison.Ordinal));
    }
}
