using CriShim.Runtime.Exec;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CriShim.Runtime.Server;

/// <summary>
/// Maps domain errors to gRPC status codes in one place, so services stay thin, and names the
/// method in the UNIMPLEMENTED answer of every RPC that is not built yet.
/// </summary>
public sealed class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e)
        {
            throw Bounded(Map(e, context));
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e)
        {
            throw Bounded(Map(e, context));
        }
    }

    /// <summary>
    /// Messages quote the request (an id, a path, an image name), which a client may make megabytes
    /// long; the message travels in an HTTP/2 trailer, and clients refuse trailers over 64 KiB or so.
    /// </summary>
    public const int MaxDetailLength = 2048;

    /// <summary>Text that may quote a request, cut to <see cref="MaxDetailLength"/> characters for a status or a log line.</summary>
    public static string Cut(string text) =>
        text.Length <= MaxDetailLength ? text : $"{text[..MaxDetailLength]}… ({text.Length - MaxDetailLength} more characters cut)";

    private static RpcException Bounded(RpcException e) =>
        e.Status.Detail.Length <= MaxDetailLength ? e : new RpcException(new Status(e.StatusCode, Cut(e.Status.Detail), e.Status.DebugException));

    /// <summary>
    /// The exception as logged: every message in its chain cut (a message may quote a multi-MiB request),
    /// stack traces whole (they are the daemon's own).
    /// </summary>
    private static string Described(Exception e)
    {
        var parts = new List<string>();
        for (var current = e; current is not null; current = current.InnerException)
        {
            parts.Add($"{current.GetType().FullName}: {Cut(current.Message)}\n{current.StackTrace}");
        }
        return string.Join("\n ---> ", parts);
    }

    private static string MethodName(ServerCallContext context) => context.Method[(context.Method.LastIndexOf('/') + 1)..];

    private RpcException Map(Exception e, ServerCallContext context)
    {
        string method = MethodName(context);
        switch (e)
        {
            case RpcException { StatusCode: StatusCode.Unimplemented } rpc when rpc.Status.Detail.Length == 0:
                return new RpcException(new Status(StatusCode.Unimplemented,
                    $"method {method} not implemented: CriShim does not serve {method} yet"));
            case RpcException rpc:
                return rpc;
            case NotFoundException:
                return new RpcException(new Status(StatusCode.NotFound, e.Message));
            case CheckpointUnavailableException:
                return new RpcException(new Status(StatusCode.Unimplemented, e.Message));
            case InsufficientSpaceException:
                return new RpcException(new Status(StatusCode.ResourceExhausted, e.Message));
            case LimitExceededException:
                return new RpcException(new Status(StatusCode.ResourceExhausted, e.Message));
            case AlreadyExistsException:
                return new RpcException(new Status(StatusCode.AlreadyExists, e.Message));
            case WrongStateException:
                return new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
            case InvalidRequestException:
                return new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
            case UnauthenticatedException:
                return new RpcException(new Status(StatusCode.Unauthenticated, e.Message));
            case TimeoutException:
                return new RpcException(new Status(StatusCode.DeadlineExceeded, e.Message));
            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, $"{method} cancelled by the client"));
            default:
                logger.LogError("{Method} failed: {Exception}", method, Described(e));
                return new RpcException(new Status(StatusCode.Internal, e is ExternalCommandException ? e.Message : $"{method}: {e.Message}"));
        }
    }
}
