namespace CriShim.Runtime.Store;

/// <summary>Writes that survive a crash: temp file, fsync, rename over the target, fsync the directory.</summary>
public static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        StateDirectory.Create(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = mode,
            }))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
            SyncDirectory(directory);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    public static void WriteText(string path, string content) => Write(path, System.Text.Encoding.UTF8.GetBytes(content));

    public static void SyncDirectory(string directory) => CriShim.NativeInterop.Directories.Sync(directory);
}
