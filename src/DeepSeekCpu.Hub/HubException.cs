namespace DeepSeekCpu.Hub;

/// <summary>
/// A model could not be found, fetched or stored: the message is one line that names the repo or file and says
/// what to do. An IOException, so front ends that report I/O errors in one line report these too.
/// </summary>
internal sealed class HubException(string message, Exception? inner = null) : IOException(message, inner)
{
    /// <summary>ENOSPC (Linux 28) or Windows' ERROR_DISK_FULL/ERROR_HANDLE_DISK_FULL: the disk filled up.</summary>
    public static bool IsDiskFull(IOException e) => e is not HubException && (e.HResult & 0xFFFF) is 28 or 112 or 39;

    public static HubException DiskFull(string path, long needed, IOException inner) =>
        new($"disk full while writing {path} ({Bytes.Format(needed)} still to download); free space or point HF_HOME at a larger disk", inner);
}

/// <summary>Byte counts for people.</summary>
internal static class Bytes
{
    public static string Format(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{n / 1024.0:F1} KiB",
        _ => $"{n} B",
    };
}
