using CriShim.Runtime.Images;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace CriShim.Runtime.Tests.Images;

public sealed class ImageVolumesTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("crishim-imgvol-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("")]
    [InlineData("data")]
    [InlineData("data/sub/")]
    [InlineData("./data")]
    [InlineData("a..b/..c")]
    public void RelativeSubPathsWithoutDotDotAreAccepted(string subPath) => ImageVolumes.CheckSubPath(subPath);

    [Theory]
    [InlineData("/data")]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("data/../../x")]
    [InlineData("data/..")]
    [InlineData("da\0ta")]
    public void AbsoluteOrDotDotSubPathsAreInvalid(string subPath) =>
        Assert.Throws<InvalidRequestException>(() => ImageVolumes.CheckSubPath(subPath));

    [Fact]
    public void SubPathSymlinksResolveInsideTheImage()
    {
        string real = Directory.CreateDirectory(Path.Combine(_root, "data", "real")).FullName;
        File.CreateSymbolicLink(Path.Combine(_root, "absolute"), "/data/real");
        File.CreateSymbolicLink(Path.Combine(_root, "data", "relative"), "real");
        File.CreateSymbolicLink(Path.Combine(_root, "up"), "../../../..");

        Assert.Equal(real, ImageVolumes.ResolveSubPath(_root, "data/real"));
        // "/data/real" means the image's own /data/real, not the host's.
        Assert.Equal(real, ImageVolumes.ResolveSubPath(_root, "absolute"));
        Assert.Equal(real, ImageVolumes.ResolveSubPath(_root, "data/relative"));
        // A symlink climbing out stops at the image's root.
        Assert.Equal(_root, ImageVolumes.ResolveSubPath(_root, "up"));
    }

    [Fact]
    public void SubPathsThatAreNoDirectoryInTheImageAreInvalid()
    {
        File.WriteAllText(Path.Combine(_root, "file"), "x");
        // The host has /etc; the image has not, so the link leads nowhere.
        File.CreateSymbolicLink(Path.Combine(_root, "host-etc"), "/etc");

        Assert.Throws<InvalidRequestException>(() => ImageVolumes.ResolveSubPath(_root, "missing"));
        Assert.Throws<InvalidRequestException>(() => ImageVolumes.ResolveSubPath(_root, "file"));
        Assert.Throws<InvalidRequestException>(() => ImageVolumes.ResolveSubPath(_root, "host-etc"));
    }

    [Fact]
    public void ImageVolumeMountsMustBeReadOnlyWithoutHostPathAndNameAPulledImage()
    {
        string imagesRoot = Path.Combine(_root, "images");
        var content = new ContentStore(imagesRoot);
        var volumes = new ImageVolumes(new ImageStore(imagesRoot, content), new LayerStore(imagesRoot, content.IngestDirectory),
            NullLogger<ImageVolumes>.Instance);
        Mount Volume() => new() { ContainerPath = "/vol", Readonly = true, Image = new ImageSpec { Image = "example.com/not-pulled:1" } };

        var writable = Volume();
        writable.Readonly = false;
        Assert.Throws<InvalidRequestException>(() => volumes.ImageOf(writable));
        var withHostPath = Volume();
        withHostPath.HostPath = "/tmp";
        Assert.Throws<InvalidRequestException>(() => volumes.ImageOf(withHostPath));
        var escaping = Volume();
        escaping.ImageSubPath = "../x";
        Assert.Throws<InvalidRequestException>(() => volumes.ImageOf(escaping));
        var notFound = Assert.Throws<NotFoundException>(() => volumes.ImageOf(Volume()));
        Assert.Contains("example.com/not-pulled:1", notFound.Message);
        Assert.True(ImageVolumes.IsImageVolume(Volume()));
        Assert.False(ImageVolumes.IsImageVolume(new Mount { ContainerPath = "/vol", HostPath = "/tmp" }));
    }
}
