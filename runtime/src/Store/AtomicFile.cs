using System.Diagnostics;
using CriShim.Runtime.Diagnostics;

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
            long started = Stopwatch.GetTimestamp();
            TimeSpan fileSync;
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = mode,
            }))
            {
                stream.Write(content);
                long synced = Stopwatch.GetTimestamp();
                stream.Flush(flushToDisk: true);
                fileSync = Stopwatch.GetElapsedTime(synced);
            }
            File.Move(temp, path, overwrite: true);
            long directorySynced = Stopwatch.GetTimestamp();
            SyncDirectory(directory);
            if (PhaseLog.Enabled)
            {
                PhaseLog.Record("record write", path, Stopwatch.GetElapsedTime(started));
                PhaseLog.Record("fsync file", path, fileSync);
                PhaseLog.Record("fsync dir", directory, Stopwatch.GetElapsedTime(directorySynced));
            }
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
