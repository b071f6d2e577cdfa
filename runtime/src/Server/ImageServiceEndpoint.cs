using CriShim.Runtime.Images;
using Grpc.Core;
using Runtime.V1;

namespace CriShim.Runtime.Server;

/// <summary>
/// runtime.v1.ImageService on the same socket as the runtime service: validates, calls the image
/// domain and shapes CRI messages.
/// </summary>
public sealed class ImageServiceEndpoint(ImagePuller puller, ImageCatalog catalog) : ImageService.ImageServiceBase
{
    public override async Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context)
    {
        string reference = RequireImage(request.Image);
        var image = await puller.PullAsync(reference, RegistryCredentials.From(request.Auth), request.Image.Annotations, context.CancellationToken);
        return new PullImageResponse { ImageRef = image.Id };
    }

    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
    {
        var response = new ListImagesResponse();
        response.Images.AddRange(ImageItems(request.Filter));
        return Task.FromResult(response);
    }

    public override Task StreamImages(StreamImagesRequest request, IServerStreamWriter<StreamImagesResponse> responseStream, ServerCallContext context) =>
        ListBatches.SendAsync(ImageItems(request.Filter), batch => new StreamImagesResponse { Images = { batch } },
            responseStream, context.CancellationToken);

    private IEnumerable<Image> ImageItems(ImageFilter? filter) => catalog.List(filter?.Image?.Image).Select(ToCri);

    public override Task<ImageStatusResponse> ImageStatus(ImageStatusRequest request, ServerCallContext context)
    {
        var response = new ImageStatusResponse();
        // An unknown image is not an error: the kubelet asks before it pulls.
        if (catalog.Find(RequireImage(request.Image)) is { } image)
        {
            response.Image = ToCri(image);
            if (request.Verbose) response.Info["info"] = catalog.VerboseInfo(image);
        }
        return Task.FromResult(response);
    }

    public override Task<RemoveImageResponse> RemoveImage(RemoveImageRequest request, ServerCallContext context)
    {
        catalog.Remove(RequireImage(request.Image));
        return Task.FromResult(new RemoveImageResponse());
    }

    public override Task<ImageFsInfoResponse> ImageFsInfo(ImageFsInfoRequest request, ServerCallContext context)
    {
        long now = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;
        var response = new ImageFsInfoResponse();
        response.ImageFilesystems.Add(ToCri(catalog.ImageFileSystem(), now));
        response.ContainerFilesystems.Add(ToCri(catalog.ContainerFileSystem(), now));
        return Task.FromResult(response);
    }

    private static string RequireImage(ImageSpec? spec) =>
        string.IsNullOrWhiteSpace(spec?.Image) ? throw new InvalidRequestException("image.image must name an image") : spec.Image;

    private static Image ToCri(StoredImage image)
    {
        var (uid, username) = ImageConfigs.SplitUser(image.Config.User);
        var cri = new Image
        {
            Id = image.Id,
            Size = image.Size,
            Username = username,
            Pinned = image.Pinned,
            Spec = new ImageSpec { Image = image.Id },
        };
        if (uid is { } numericUid) cri.Uid = new Int64Value { Value = numericUid };
        cri.RepoTags.AddRange(image.RepoTags);
        cri.RepoDigests.AddRange(image.RepoDigests);
        foreach (var (key, value) in image.Annotations) cri.Spec.Annotations[key] = value;
        return cri;
    }

    private static FilesystemUsage ToCri(FileSystemUsage usage, long timestamp) => new()
    {
        Timestamp = timestamp,
        FsId = new FilesystemIdentifier { Mountpoint = usage.Mountpoint },
        UsedBytes = new UInt64Value { Value = usage.UsedBytes },
        InodesUsed = new UInt64Value { Value = usage.UsedInodes },
    };
}
