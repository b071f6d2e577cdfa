using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>runtime.v1.ImageService on the same socket as the runtime service.</summary>
public sealed class ImageServiceEndpoint : ImageService.ImageServiceBase;
