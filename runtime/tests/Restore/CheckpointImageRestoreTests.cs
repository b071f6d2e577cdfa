using CriShim.Runtime.Images;
using CriShim.Runtime.Restore;

namespace CriShim.Runtime.Tests.Restore;

public class CheckpointImageRestoreTests
{
    private const string ImageId = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private const string ManifestDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    private const string OtherDigest = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    private static StoredImage Stored(string id, string tag, string repoDigest) =>
        new(id, [tag], [repoDigest], 0, new ImageRuntimeConfig([], [], [], "", "", "", [], new Dictionary<string, string>()), false, new Dictionary<string, string>());

    [Theory]
    [InlineData("localhost:5000/ckpt/counter:v1", "localhost:5000/ckpt/counter:v1@" + ManifestDigest)]
    [InlineData("localhost:5000/ckpt/counter@" + OtherDigest, "localhost:5000/ckpt/counter@" + OtherDigest)]
    [InlineData(ImageId, ImageId)]
    public void ARestoredContainerNamesTheCheckpointImageAsRequestedPinnedToItsDigest(string requested, string restoredFrom) =>
        Assert.Equal(restoredFrom, CheckpointImageRestore.RestoredFrom(requested, Stored(ImageId, "localhost:5000/ckpt/counter:v1", $"localhost:5000/ckpt/counter@{ManifestDigest}")));
}
