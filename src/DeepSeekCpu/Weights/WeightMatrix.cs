namespace DeepSeekCpu.Weights;

/// <summary>
/// A linear layer's weight as the kernels see it: <see cref="Rows"/> outputs by <see cref="Cols"/> inputs, row-major,
/// each row <see cref="RowBytes"/> bytes of <see cref="Type"/> blocks, pointing into the memory map (never copied).
/// FP8 weights carry DeepSeek's block scales: the real value of (r, c) is fp8(r, c) * <see cref="BlockScales"/>[r/128, c/128].
/// </summary>
internal sealed unsafe partial class WeightMatrix : IDisposable
{
    public const int Fp8BlockSize = 128; // DeepSeek-V3 weight_block_size [128, 128]

    public string Name { get; }
    public DType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public byte* Data { get; }
    public long RowBytes { get; }
    /// <summary>FP8 only: float32 [ceil(Rows/128), ceil(Cols/128)], row-major.</summary>
    public float* BlockScales { get; }
    public int ScaleCols { get; }
    /// <summary>
    /// What keeps <see cref="Data"/> alive when the matrix does not point into a memory map (e.g. the
    /// <see cref="NativeBuffer"/> of a quantized copy); disposing the matrix disposes it.
    /// </summary>
    public IDisposable? Owner { get; }

    public WeightMatrix(string name, DType type, int rows, int cols, byte* data, float* blockScales = null)
        : this(name, type, rows, cols, data, blockScales, null) { }

    public WeightMatrix(string name, DType type, int rows, int cols, byte* data, float* blockScales, IDisposable? owner)
    {
        Owner = owner;
        if (cols % type.BlockSize() != 0)
            throw new ModelFormatException($"{name}: {cols} columns is not a multiple of the {type} block size {type.BlockSize()}");
        Name = name; Type = type; Rows = rows; Cols = cols; Data = data;
        RowBytes = type.ByteCount(cols);
        BlockScales = blockScales;
        ScaleCols = (cols + Fp8BlockSize - 1) / Fp8BlockSize;
        if (type == DType.F8_E4M3 && blockScales == null) throw new ModelFormatException($"{name}: FP8 weight without weight_scale_inv");
    }

    public long ByteLength => RowBytes * Rows;

    /// <summary>
    /// The rows re-laid-out at load for the decode kernels (Kernels/Repack/Interleave: groups of 16 rows with their
    /// blocks interleaved), or null; <see cref="Data"/> keeps the stored layout for everything else (the float prompt GEMM; the int8 one reads the copy).
    /// </summary>
    public byte* Interleaved { get; private set; }
    /// <summary>Size of <see cref="Interleaved"/> in bytes (0 without a copy).</summary>
    public long InterleavedBytes { get; private set; }
    private IDisposable? _interleavedOwner;

    /// <summary>Attaches an interleaved copy (Interleave.Attach); <paramref name="owner"/> is disposed with the matrix.</summary>
    internal void SetInterleaved(byte* data, long bytes, IDisposable owner)
    {
        Interleaved = data; InterleavedBytes = bytes; _interleavedOwner = owner;
    }

    /// <summary>Frees the memory of an owned matrix (a quantized copy, an interleaved copy); a view into a memory map has nothing to free.</summary>
    public void Dispose()
    {
        Interleaved = null; InterleavedBytes = 0;
        _interleavedOwner?.Dispose();
        Owner?.Dispose();
    }

    public byte* Row(int r) => Data + r * RowBytes;

    /// <summary>A 2-D tensor [rows, cols] as a matrix; <paramref name="scaleInv"/> is the FP8 weight_scale_inv tensor.</summary>
    public static WeightMatrix From(TensorView t, TensorView? scaleInv = null)
    {
        if (t.Rank != 2) throw new ModelFormatException($"{t.File}: tensor {t.Name} has shape {t.ShapeText}, expected a 2-D matrix");
        return FromSlice(t, 0, (int)t.Shape[0], (int)t.Shape[1], scaleInv);
    }

    private static WeightMatrix FromSlice(TensorView t, int first, int rows, int cols, TensorView? scaleInv)
    {
        float* scales = null;
        if (t.Type == DType.F8_E4M3)
        {
            if (scaleInv is not { } s) throw new ModelFormatException($"{t.File}: FP8 tensor {t.Name} has no {t.Name}_scale_inv");
            long sr = (rows + Fp8BlockSize - 1) / Fp8BlockSize, sc = (cols + Fp8BlockSize - 1) / Fp8BlockSize;
            if (s.Type != DType.F32 || s.Rank != 2 || s.Shape[0] != sr || s.Shape[1] != sc)
                throw new ModelFormatException($"{s.File}: tensor {s.Name} is {s.Type} {s.ShapeText}, expected F32 [{sr}, {sc}] block scales for {t.Name}");
            scales = (float*)s.Data;
        }
        return new WeightMatrix(t.Name, t.Type, rows, cols, t.Data + t.Type.ByteCount((long)first * cols), scales);
    }
}
