using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace DeepSeekCpu.Formats;

/// <summary>
/// A whole file mapped read-only into memory. Weights are views into this mapping and are never copied.
/// The mapping lives until <see cref="Dispose"/>; views must not outlive it.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _mmf;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    public string Path { get; }
    public long Length { get; }
    public byte* Pointer => _pointer;

    private MappedFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists) throw new ModelFormatException($"{path}: file not found");
        Length = info.Length;
        if (Length == 0) return; // nothing to map; readers report the file as truncated
        _mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _mmf.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + _view.PointerOffset;
    }

    public static MappedFile Open(string path) => new(path);

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

    public void Dispose()
    {
        if (_pointer != null)
        {
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _mmf?.Dispose();
    }
}
