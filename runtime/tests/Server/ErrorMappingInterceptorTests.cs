using CriShim.Runtime.Server;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace CriShim.Runtime.Tests.Server;

public class ErrorMappingInterceptorTests
{
    private sealed class RecordingLogger : ILogger<ErrorMappingInterceptor>
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception) + exception);
    }

    private sealed class CallContext : ServerCallContext
    {
        protected override string MethodCore => "/runtime.v1.RuntimeService/CreateContainer";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "unix:";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => CancellationToken.None;
        protected override Metadata ResponseTrailersCore => [];
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }

    [Fact]
    public async Task AnInternalErrorQuotingAMultiMiBRequestIsCutInTheStatusAndInTheLog()
    {
        string huge = new('x', 4 * 1024 * 1024);
        var logger = new RecordingLogger();
        var interceptor = new ErrorMappingInterceptor(logger);

        var e = await Assert.ThrowsAsync<RpcException>(() => interceptor.UnaryServerHandler<string, string>("request", new CallContext(),
            (_, _) => throw new InvalidOperationException("bad " + huge, new IOException("inner " + huge))));

        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.InRange(e.Status.Detail.Length, ErrorMappingInterceptor.MaxDetailLength, ErrorMappingInterceptor.MaxDetailLength + 100);
        string logged = Assert.Single(logger.Lines);
        Assert.Contains("CreateContainer failed", logged);
        Assert.Contains("System.IO.IOException: inner xxx", logged);
        Assert.Contains("more characters cut", logged);
        // Two cut messages and the (short) stack traces of this test.
        Assert.InRange(logged.Length, 2 * ErrorMappingInterceptor.MaxDetailLength, 4 * ErrorMappingInterceptor.MaxDetailLength + 8192);
    }

    private static async Task<RpcException> MappedAsync(Exception thrown) =>
        await Assert.ThrowsAsync<RpcException>(() => new ErrorMappingInterceptor(new RecordingLogger())
            .UnaryServerHandler<string, string>("request", new CallContext(), (_, _) => throw thrown));

    public static TheoryData<Exception, StatusCode> DomainErrors => new()
    {
        { new InvalidRequestException("bad input"), StatusCode.InvalidArgument },
        { new NotFoundException("no such thing"), StatusCode.NotFound },
        { new WrongStateException("not now"), StatusCode.FailedPrecondition },
        { new UnauthenticatedException("who are you"), StatusCode.Unauthenticated },
        { new AlreadyExistsException("taken"), StatusCode.AlreadyExists },
        { LimitExceededException.Over("a manifest", 4096), StatusCode.ResourceExhausted },
        { new InsufficientSpaceException("disk full"), StatusCode.ResourceExhausted },
        { new CheckpointUnavailableException("CheckpointContainer", "no criu"), StatusCode.Unimplemented },
        { new TimeoutException("too slow"), StatusCode.DeadlineExceeded },
    };

    [Theory]
    [MemberData(nameof(DomainErrors))]
    public async Task EachDomainErrorHasItsCodeAndKeepsItsMessage(Exception thrown, StatusCode code)
    {
        var e = await MappedAsync(thrown);

        Assert.Equal(code, e.StatusCode);
        Assert.Contains(thrown.Message, e.Status.Detail);
    }

    [Fact]
    public async Task AnArgumentExceptionIsCriShimsBugNotTheCallersMistake()
    {
        foreach (var bug in new Exception[] { new ArgumentNullException("spec"), new ArgumentException("wrong argument"), new ArgumentOutOfRangeException("index") })
        {
            var e = await MappedAsync(bug);

            Assert.Equal(StatusCode.Internal, e.StatusCode);
            Assert.Contains(bug.Message, e.Status.Detail);
        }
    }
}
