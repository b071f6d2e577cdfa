using System.Diagnostics;
using CriShim.Runtime.Metrics;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CriShim.Runtime.Server;

/// <summary>
/// Counts every CRI RPC by its final status code and times it. Registered outside
/// <see cref="ErrorMappingInterceptor"/>, so it sees the code the client gets.
/// </summary>
public sealed class RpcMetricsInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        var code = StatusCode.Unknown;
        try
        {
            var response = await continuation(request, context);
            code = context.Status.StatusCode;
            return response;
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            Record(context, code, start);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        var code = StatusCode.Unknown;
        try
        {
            await continuation(request, responseStream, context);
            code = context.Status.StatusCode;
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            Record(context, code, start);
        }
    }

    /// <summary>context.Method is a bound route ("/runtime.v1.RuntimeService/Version"), so the label values are bounded.</summary>
    private static void Record(ServerCallContext context, StatusCode code, long start)
    {
        string method = context.Method;
        int slash = method.LastIndexOf('/');
        DaemonMetrics.RpcCompleted(method[1..slash], method[(slash + 1)..], code.ToString(), Stopwatch.GetElapsedTime(start));
    }
}
