using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>
/// The route type both CRI services are mapped under. It carries no generated BindService attribute,
/// so only <see cref="CriServiceMethodProvider"/> adds its methods.
/// </summary>
public sealed class CriServices;

/// <summary>
/// Binds every RPC of <see cref="RuntimeService"/> and <see cref="ImageService"/> to the endpoints,
/// with request deserializers that answer INVALID_ARGUMENT for bytes that are no valid message.
/// grpc-dotnet deserializes before any interceptor runs and answers UNKNOWN for a parse error, so
/// that answer cannot come from <see cref="ErrorMappingInterceptor"/>. The endpoints hold only
/// singletons, so one instance of each serves every call.
/// </summary>
public sealed class CriServiceMethodProvider(RuntimeServiceEndpoint runtime, ImageServiceEndpoint images) : IServiceMethodProvider<CriServices>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<CriServices> context)
    {
        var binder = new Binder(context);
        RuntimeService.BindService(binder, runtime);
        ImageService.BindService(binder, images);
    }

    private sealed class Binder(ServiceMethodProviderContext<CriServices> context) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            context.AddUnaryMethod(Strict(method), [], (_, request, call) => handler!(request, call));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddServerStreamingMethod(Strict(method), [], (_, request, stream, call) => handler!(request, stream, call));

        // The CRI has no client-streaming or duplex RPC; a proto that adds one fails start-up here, not a call.
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            throw new NotSupportedException($"client-streaming RPC {method.FullName} has no binding");

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            throw new NotSupportedException($"duplex-streaming RPC {method.FullName} has no binding");

        private static Method<TRequest, TResponse> Strict<TRequest, TResponse>(Method<TRequest, TResponse> method)
            where TRequest : class where TResponse : class
        {
            var generated = method.RequestMarshaller;
            var request = Marshallers.Create(generated.ContextualSerializer, context =>
            {
                try
                {
                    return generated.ContextualDeserializer(context);
                }
                catch (InvalidProtocolBufferException e)
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument, $"{method.Name}: the request is no valid {typeof(TRequest).Name}: {e.Message}"));
                }
            });
            return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, request, method.ResponseMarshaller);
        }
    }
}
