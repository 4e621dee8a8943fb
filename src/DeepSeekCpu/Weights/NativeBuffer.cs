using System.Runtime.InteropServices;

namespace DeepSeekCpu.Weights;

/// <summary>
/// Aligned (64 bytes by default) native memory for weights produced at load time (quantized copies, weights copied out of a
/// memory map). Freed by <see cref="Dispose"/> or, failing that, by the finalizer once nothing references it; a
/// <see cref="WeightMatrix"/> over it keeps it alive through <see cref="WeightMatrix.Owner"/>.
/// </summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private byte* _pointer;

    public long Length { get; }
    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(nameof(NativeBuffer));

    public NativeBuffer(long bytes, long alignment = 64)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        Length = bytes;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), (nuint)alignment);
        if (bytes > 0) GC.AddMemoryPressure(bytes);
    }

    public Span<byte> Span => new(Pointer, checked((int)Length));

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~NativeBuffer() => Free();

    private void Free()
    {
        var p = _pointer;
        _pointer = null;
        if (p == null) return;
        NativeMemory.AlignedFree(p);
        if (Length > 0) GC.RemoveMemoryPressure(Length);
    }
}
