using System.Runtime.InteropServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Platform;

/// <summary>
/// Advice to the operating system about weight memory, through libc's madvise/mlock (an OS call, not native code of
/// ours). Linux only; elsewhere, or when the kernel refuses, each call returns false and nothing changes, so callers
/// can always try. See bench `mmap` for what each option does to the read bandwidth of a memory-mapped file.
/// </summary>
internal static unsafe partial class MemoryAdvice
{
    // asm-generic/mman-common.h (same values on x86-64 and arm64)
    private const int MADV_WILLNEED = 3;
    private const int MADV_HUGEPAGE = 14;
    private const int MADV_POPULATE_READ = 22;   // Linux 5.14+
    private const long HugePage = 2 << 20;

    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>Start reading the range into the page cache (asynchronous).</summary>
    public static bool WillNeed(void* p, long bytes) => Advise(p, bytes, MADV_WILLNEED);

    /// <summary>Back the range with 2 MiB pages where the kernel can (anonymous memory; file mappings only on
    /// filesystems with large-folio support). Fewer TLB misses when streaming gigabytes.</summary>
    public static bool HugePages(void* p, long bytes) => Advise(p, bytes, MADV_HUGEPAGE);

    /// <summary>Fault the whole range in now (page tables filled), so later reads take no page faults.</summary>
    public static bool PopulateRead(void* p, long bytes) => Advise(p, bytes, MADV_POPULATE_READ);

    /// <summary>Pin the range in RAM (no reclaim, no pageout by a proactive reclaimer); needs RLIMIT_MEMLOCK or root.</summary>
    public static bool Lock(void* p, long bytes)
    {
        if (!IsSupported || bytes <= 0) return false;
        var (start, len) = PageRange(p, bytes);
        try { return mlock((void*)start, (nuint)len) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>
    /// A copy of [p, p + bytes) in anonymous memory aligned to 2 MiB and advised as huge pages: the fallback when a
    /// memory-mapped file reads slowly. Costs the RAM of the copy (the page cache copy can then be dropped).
    /// </summary>
    public static NativeBuffer CopyToAnonymous(byte* p, long bytes)
    {
        var buf = new NativeBuffer(bytes, HugePage);
        HugePages(buf.Pointer, bytes);
        const long chunk = 1 << 30;
        for (long off = 0; off < bytes; off += chunk)
        {
            int len = (int)Math.Min(chunk, bytes - off);
            new ReadOnlySpan<byte>(p + off, len).CopyTo(new Span<byte>(buf.Pointer + off, len));
        }
        return buf;
    }

    /// <summary>
    /// Reads [offset, offset + bytes) of a file with read() into anonymous memory aligned to 2 MiB and advised as huge
    /// pages: the same result as <see cref="CopyToAnonymous"/> without first mapping the file.
    /// </summary>
    public static NativeBuffer ReadFileToAnonymous(string path, long offset = 0, long bytes = -1)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        if (bytes < 0) bytes = RandomAccess.GetLength(handle) - offset;
        var buf = new NativeBuffer(bytes, HugePage);
        HugePages(buf.Pointer, bytes);
        const int chunk = 64 << 20;
        for (long done = 0; done < bytes;)
        {
            int len = (int)Math.Min(chunk, bytes - done);
            int got = RandomAccess.Read(handle, new Span<byte>(buf.Pointer + done, len), offset + done);
            if (got <= 0) { buf.Dispose(); throw new EndOfStreamException($"{path}: expected {bytes} bytes at offset {offset}, got {done}"); }
            done += got;
        }
        return buf;
    }

    private static bool Advise(void* p, long bytes, int advice)
    {
        if (!IsSupported || bytes <= 0) return false;
        var (start, len) = PageRange(p, bytes);
        try { return madvise((void*)start, (nuint)len, advice) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>madvise/mlock want page-aligned starts: widen the range to whole 4 KiB pages.</summary>
    private static (nint Start, long Length) PageRange(void* p, long bytes)
    {
        nint start = (nint)p & ~(nint)4095;
        return (start, (long)((nint)p - start) + bytes);
    }

    /// <summary>
    /// Bytes of the mapping that starts at <paramref name="start"/> that are resident, and of those how many are mapped
    /// as 2 MiB pages (/proc/self/smaps "Rss" and "FilePmdMapped"/"AnonHugePages"); null where smaps is unavailable.
    /// </summary>
    public static (long Resident, long Huge)? MappedPageSizes(void* start)
    {
        if (!IsSupported) return null;
        string head = ((nint)start).ToString("x") + "-";
        try
        {
            bool inside = false;
            long rss = -1, huge = 0;
            foreach (var line in File.ReadLines("/proc/self/smaps"))
            {
                bool header = IsSmapsHeader(line);
                if (header && line.StartsWith(head, StringComparison.Ordinal)) { inside = true; continue; }
                if (!inside) continue;
                if (header) break;
                if (line.StartsWith("Rss:", StringComparison.Ordinal)) rss = Kilobytes(line);
                else if (line.StartsWith("FilePmdMapped:", StringComparison.Ordinal) || line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                    huge += Kilobytes(line);
            }
            return rss < 0 ? null : (rss, huge);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Whether any file page in the system sits in a 2 MiB page-cache folio (/proc/meminfo FileHugePages).</summary>
    public static bool KernelMakesFileHugePages()
    {
        if (!IsSupported) return false;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("FileHugePages:", StringComparison.Ordinal)) return Kilobytes(line) > 0;
        }
        catch (IOException) { }
        return false;
    }

    /// <summary>
    /// Asks the kernel to drop the file's clean, unmapped pages from the page cache (posix_fadvise DONTNEED); the next
    /// read brings them back through readahead, which with MADV_HUGEPAGE allocates 2 MiB folios.
    /// </summary>
    public static bool DropFromPageCache(string path)
    {
        if (!IsSupported) return false;
        try
        {
            using var f = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            return posix_fadvise((int)f.DangerousGetHandle(), 0, 0, POSIX_FADV_DONTNEED) == 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    private const int POSIX_FADV_DONTNEED = 4;

    /// <summary>A mapping's first line, "start-end perms offset dev inode path" with hexadecimal start and end.</summary>
    private static bool IsSmapsHeader(string line)
    {
        int dash = line.IndexOf('-'), space = line.IndexOf(' ');
        if (dash <= 0 || space <= dash + 1) return false;
        for (int i = 0; i < space; i++)
            if (i != dash && !char.IsAsciiHexDigit(line[i])) return false;
        return true;
    }

    private static long Kilobytes(string smapsLine)
    {
        // "FilePmdMapped:   8605696 kB"
        var parts = smapsLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 && long.TryParse(parts[1], out long kb) ? kb * 1024 : 0;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int posix_fadvise(int fd, long offset, long length, int advice);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(void* addr, nuint length, int advice);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mlock(void* addr, nuint length);
}
