using System.IO.MemoryMappedFiles;
using DeepSeekCpu.Platform;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>How model files are brought into memory.</summary>
public enum WeightMemory
{
    /// <summary>Memory-map the file (default, like llama.cpp): weights are views of the page cache, shared between
    /// processes, loaded in milliseconds; the mapping is populated and advised for huge pages at open.</summary>
    Mmap,
    /// <summary>Read the file into private anonymous memory on 2 MiB pages (llama.cpp's --no-mmap): costs a read at
    /// load (~0.2 s/GB from the page cache) but is immune to the slow first touch of file pages measured on hosts whose
    /// proactive reclaimer (DAMON pageout) ages idle file pages.</summary>
    Anonymous,
}

/// <summary>
/// A whole file in memory, read-only: memory-mapped (weights are views into the mapping, never copied) or, with
/// <see cref="WeightMemory.Anonymous"/>, read once into private memory. Lives until <see cref="Dispose"/>; views
/// must not outlive it.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private MemoryMappedFile? _mmf;
    private MemoryMappedViewAccessor? _view;
    private readonly NativeBuffer? _anonymous;
    private byte* _pointer;

    public string Path { get; }
    public long Length { get; }
    public byte* Pointer => _pointer;

    public WeightMemory Memory { get; }

    private MappedFile(string path, WeightMemory memory)
    {
        Path = path; Memory = memory;
        var info = new FileInfo(path);
        if (!info.Exists) throw new ModelFormatException($"{path}: file not found");
        // A symlink (Hugging Face cache snapshots link into blobs/) reports its own length: size the final target.
        if (info.LinkTarget != null) info = (FileInfo?)info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
        if (!info.Exists) throw new ModelFormatException($"{path}: link target {info.FullName} not found");
        Length = info.Length;
        if (Length == 0) return; // nothing to map; readers report the file as truncated
        if (memory == WeightMemory.Anonymous)
        {
            _anonymous = MemoryAdvice.ReadFileToAnonymous(path, 0, Length);
            _pointer = _anonymous.Pointer;
            return;
        }
        // Large files (weights): fill the page tables now, so decoding takes no page faults; ask for huge pages
        // where the filesystem allows. Both are advice: refusal changes nothing but speed.
        // Only when the file fits in memory with a quarter to spare (for the KV cache, activations and everything else):
        // populating a 400 GB R1 checkpoint on a smaller machine would read it all and thrash the page cache before
        // the first token.
        bool populate = Length >= 64 << 20 && Length < GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4 * 3;
        Map(populate);
        if (populate && NeedsHugeFolios())
        {
            // The page cache holds most of this file in small folios (how it was written or first read decides),
            // so the mapping gets 4 KiB pages: one TLB walk per 4 KiB streamed, measured at 8% of decoding speed on
            // V2-Lite (21.4 → 23.1 tokens/s). Dropping the file's cached pages and reading them back through
            // readahead under MADV_HUGEPAGE rebuilds them as 2 MiB folios, once per file until they are evicted.
            Unmap();
            MemoryAdvice.DropFromPageCache(path);
            Map(populate: true);
        }
        if (populate && MemoryAdvice.MappedPageSizes(_pointer) is { Resident: > 0 } r) HugePageShare = (double)r.Huge / r.Resident;
    }

    /// <summary>Share of a populated mapping that sits on 2 MiB pages; null when not known (small files, files that
    /// were not populated, anonymous memory).</summary>
    public double? HugePageShare { get; private set; }

    private void Map(bool populate)
    {
        try
        {
            _mmf = MemoryMappedFile.CreateFromFile(Path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _mmf.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }
        catch { Dispose(); throw; }
        if (!populate) return;
        MemoryAdvice.HugePages(_pointer, Length);
        MemoryAdvice.PopulateRead(_pointer, Length);
    }

    /// <summary>
    /// True when the kernel can put this file in 2 MiB page-cache folios (some file already is) but under three
    /// quarters of this mapping is: then a re-read is worth it. Where the kernel makes no file huge pages at all, never (a re-read would
    /// change nothing and cost a read of the file every time).
    /// </summary>
    private bool NeedsHugeFolios()
    {
        if (MemoryAdvice.MappedPageSizes(_pointer) is not { } sizes || sizes.Resident < Length / 2) return false;
        if (sizes.Huge >= sizes.Resident / 4 * 3) return false;
        return sizes.Huge > 0 || MemoryAdvice.KernelMakesFileHugePages();
    }

    public static MappedFile Open(string path, WeightMemory memory = WeightMemory.Mmap) => new(path, memory);

    /// <summary>The bytes [offset, offset+length) of the file; checks bounds so a truncated file is reported, not read past.</summary>
    public ReadOnlySpan<byte> Span(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ModelFormatException($"{Path}: expected {length} bytes at offset {offset}, but the file has {Length} bytes (truncated?)");
        return new ReadOnlySpan<byte>(_pointer + offset, checked((int)length));
    }

    public byte* At(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ModelFormatException($"{Path}: expected {length} bytes at offset {offset}, but the file has {Length} bytes (truncated?)");
        return _pointer + offset;
    }

    private void Unmap()
    {
        if (_pointer != null && _view != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _pointer = null;
        _view?.Dispose(); _view = null;
        _mmf?.Dispose(); _mmf = null;
    }

    public void Dispose()
    {
        Unmap();
        _anonymous?.Dispose();
    }
}
