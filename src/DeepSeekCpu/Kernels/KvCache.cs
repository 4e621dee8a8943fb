using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>How a KV cache stores its values (--cache-type; llama.cpp's --cache-type-k/-v with the same names).</summary>
public enum KvCacheType
{
    /// <summary>float32: exact, 4 bytes per value.</summary>
    F32,
    /// <summary>IEEE half (the default, as in llama.cpp): 2 bytes per value.</summary>
    F16,
    /// <summary>bfloat16 (float32's exponent, 8-bit mantissa), round to nearest even: 2 bytes per value.</summary>
    BF16,
    /// <summary>ggml's Q8_0 blocks (ggml-common.h block_q8_0: a half scale and 32 signed bytes): 1.0625 bytes per value.</summary>
    Q8_0,
}

/// <summary>
/// One layer's cache of one sequence: a row of <see cref="Width"/> values per position, stored as
/// <see cref="Type"/>, in chunks of <see cref="ChunkRows"/> positions allocated as the sequence reaches them, so a
/// session costs memory for the tokens it holds, not for the context it may reach. Rows are written once
/// (<see cref="Write"/>, by the thread running the pass) and read as float32 tiles by the attention kernels
/// (<see cref="Rows(int, int, Span{float})"/>, from any thread).
/// A row of several KV heads (<see cref="Heads"/>) is stored head by head within a chunk, [head][ChunkRows][head
/// width], so one head's keys are contiguous: a decoding step streams each head's rows on its own, and with the
/// heads side by side in a row it read half of every 512-byte row of the 1.5B distill, at 1.4x the time per head
/// of one contiguous head (`DeepSeekCpu.Bench attention --decode --keys 8192`, `--kv-heads 2` against `1`).
/// </summary>
internal sealed class KvCache
{
    /// <summary>Positions per allocated chunk (a multiple of <see cref="Tile"/>).</summary>
    public const int ChunkRows = 256;

    /// <summary>Rows converted to float32 at a time by readers (tiles never cross a chunk).</summary>
    public const int Tile = 32;

    public KvCacheType Type { get; }
    public int Width { get; }
    public int RowBytes { get; }
    public int Capacity { get; }                       // positions the sequence may reach
    /// <summary>Heads stored apart (1: whole rows); each <see cref="HeadWidth"/> values, <see cref="HeadBytes"/> bytes.</summary>
    public int Heads { get; }
    public int HeadWidth { get; }
    public int HeadBytes { get; }
    private byte[][] _chunks = [];                     // [chunk][Heads][ChunkRows][HeadBytes]
    private int _allocated;                            // chunks allocated
    [ThreadStatic] private static float[]? _row;

    /// <param name="heads">KV heads in a row, stored apart where they split the row evenly (Q8_0: into whole blocks); else 1.</param>
    public KvCache(KvCacheType type, int width, int capacity, int heads = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        Type = type; Width = width; Capacity = capacity; RowBytes = RowBytesOf(type, width);
        Heads = heads > 1 && width % heads == 0 && (type != KvCacheType.Q8_0 || width / heads % 32 == 0) ? heads : 1;
        HeadWidth = width / Heads;
        HeadBytes = RowBytesOf(type, HeadWidth);       // Heads · HeadBytes = RowBytes (whole Q8_0 blocks per head)
    }

    /// <summary>Head <paramref name="h"/>'s bytes of row <paramref name="pos"/>.</summary>
    private Span<byte> Segment(int pos, int h) =>
        _chunks[pos / ChunkRows].AsSpan((h * ChunkRows + pos % ChunkRows) * HeadBytes, HeadBytes);

    /// <summary>Bytes of one row of <paramref name="width"/> values (Q8_0 pads the last block with zeros).</summary>
    public static int RowBytesOf(KvCacheType type, int width) => type switch
    {
        KvCacheType.F32 => 4 * width,
        KvCacheType.F16 or KvCacheType.BF16 => 2 * width,
        KvCacheType.Q8_0 => (width + 31) / 32 * 34,          // sizeof(block_q8_0): half d + 32 int8
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Bytes allocated so far (whole chunks).</summary>
    public long AllocatedBytes => (long)_allocated * ChunkRows * RowBytes;

    /// <summary>Parses a --cache-type value (f32, f16, bf16, q8_0); null when it is none of them.</summary>
    public static KvCacheType? Parse(string s) => s.ToLowerInvariant() switch
    {
        "f32" => KvCacheType.F32, "f16" => KvCacheType.F16, "bf16" => KvCacheType.BF16, "q8_0" => KvCacheType.Q8_0, _ => null,
    };

    public static string Name(KvCacheType t) => t.ToString().ToLowerInvariant();

    /// <summary>Stores <paramref name="row"/> [Width] at <paramref name="pos"/>, allocating its chunk on first use.</summary>
    public unsafe void Write(int pos, ReadOnlySpan<float> row)
    {
        if ((uint)pos >= (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(pos), $"position {pos} is outside the cache's {Capacity}");
        int c = pos / ChunkRows;
        while (_allocated <= c)
        {
            if (_chunks.Length == _allocated) Array.Resize(ref _chunks, Math.Max(4, 2 * _chunks.Length));
            _chunks[_allocated++] = GC.AllocateUninitializedArray<byte>(ChunkRows * RowBytes);
        }
        for (int h = 0; h < Heads; h++) WriteRow(Type, row.Slice(h * HeadWidth, HeadWidth), Segment(pos, h));
    }

    /// <summary>Values x stored as <paramref name="type"/> into dst (Q8_0: x.Length rounded up to whole blocks).</summary>
    private static unsafe void WriteRow(KvCacheType type, ReadOnlySpan<float> x, Span<byte> dst)
    {
        switch (type)
        {
            case KvCacheType.F32: MemoryMarshal.AsBytes(x).CopyTo(dst); break;
            case KvCacheType.F16: TensorPrimitives.ConvertToHalf(x, MemoryMarshal.Cast<byte, Half>(dst)); break;
            case KvCacheType.BF16:
            {
                var d = MemoryMarshal.Cast<byte, ushort>(dst);
                for (int i = 0; i < x.Length; i++) d[i] = Quantize.FloatToBf16(x[i]);
                break;
            }
            default:
            {
                Span<float> block = stackalloc float[32];
                fixed (byte* b = dst)
                fixed (float* bp = block)
                    for (int i = 0; i < x.Length; i += 32)
                    {
                        block.Clear();                       // the padding of a last partial block quantizes as zeros
                        x.Slice(i, Math.Min(32, x.Length - i)).CopyTo(block);
                        Quantize.Q8_0(bp, (BlockQ8_0*)b + i / 32);
                    }
                break;
            }
        }
    }

    /// <summary>
    /// Rows first..first+count-1 as float32 [count, Width]; they must lie in one chunk (first % Tile == 0 and
    /// count ≤ Tile keep them there). F32 rows are returned in place; other types are converted into
    /// <paramref name="scratch"/> (at least count * Width values).
    /// </summary>
    public ReadOnlySpan<float> Rows(int first, int count, Span<float> scratch) => Rows(first, count, scratch, 0, Width, out _);

    /// <summary>
    /// Columns col..col+cols-1 of rows first..first+count-1 as float32, row j at [j·stride ..][..cols]: F32 rows in
    /// place (stride = <see cref="Width"/>), other types converted into <paramref name="scratch"/> (stride = cols), only
    /// the columns asked for (one GQA head of a K or V cache holding several: the others are not converted). Q8_0
    /// columns must start on a block (col % 32 == 0); the same chunk rule as <see cref="Rows(int, int, Span{float})"/>.
    /// </summary>
    public unsafe ReadOnlySpan<float> Rows(int first, int count, Span<float> scratch, int col, int cols, out int stride)
    {
        if ((uint)col > (uint)Width || (uint)cols > (uint)(Width - col) || (Type == KvCacheType.Q8_0 && col % 32 != 0))
            throw new ArgumentOutOfRangeException(nameof(col), $"columns {col}..{col + cols} do not lie in a {Name(Type)} row of {Width}");
        int h = col / HeadWidth;
        if (cols > 0 && (col + cols - 1) / HeadWidth != h) return Gather(first, count, scratch, col, cols, out stride);
        col -= h * HeadWidth;                          // within head h's rows, HeadBytes apart
        int rowBytes = HeadBytes;
        var src = _chunks[first / ChunkRows].AsSpan((h * ChunkRows + first % ChunkRows) * rowBytes, count * rowBytes);
        if (Type == KvCacheType.F32)
        {
            stride = HeadWidth;
            return MemoryMarshal.Cast<byte, float>(src).Slice(col, (count - 1) * HeadWidth + cols);
        }
        // byte offset and length of the columns in a stored row: 2 bytes per value, or whole Q8_0 blocks
        int offset = Type == KvCacheType.Q8_0 ? col / 32 * 34 : 2 * col;
        int bytes = Type == KvCacheType.Q8_0 ? (cols + 31) / 32 * 34 : 2 * cols;
        var dst = scratch[..(count * cols)];
        stride = cols;
        if (Type is KvCacheType.F16 or KvCacheType.BF16)
        {
            // the rows' columns widened in one loop (a call per row with its span checks cost as much as its 8 vectors)
            fixed (byte* s = src)
            fixed (float* d = dst)
                if (Type == KvCacheType.F16) FloatDot.WidenRows<FloatDot.F16Decode>(s + offset, rowBytes, d, cols, count);
                else FloatDot.WidenRows<FloatDot.Bf16Decode>(s + offset, rowBytes, d, cols, count);
        }
        else
            for (int r = 0; r < count; r++) ReadRow(Type, src.Slice(r * rowBytes + offset, bytes), dst.Slice(r * cols, cols));
        PrefetchNext(first + count, count, h, offset, bytes);
        return dst;
    }

    /// <summary><see cref="Rows(int, int, Span{float}, int, int, out int)"/> for columns across stored heads: row by row
    /// through <see cref="Read"/> (whole rows of a cache stored head by head).</summary>
    private ReadOnlySpan<float> Gather(int first, int count, Span<float> scratch, int col, int cols, out int stride)
    {
        var row = _row is { } r0 && r0.Length >= Width ? r0 : _row = new float[Width];
        var dst = scratch[..(count * cols)];
        for (int r = 0; r < count; r++)
        {
            Read(first + r, row);
            row.AsSpan(col, cols).CopyTo(dst.Slice(r * cols, cols));
        }
        stride = cols;
        return dst;
    }

    /// <summary>
    /// Asks for the same columns of the next <paramref name="count"/> rows from <paramref name="first"/> on (the tile a
    /// reader takes next) to be brought into L2 while this tile is multiplied: a decoding step reads each row of a
    /// long cache once, in tiles whose products leave the memory idle between them (`DeepSeekCpu.Bench attention
    /// --decode --keys 8192`, three alternations: 3.1-3.6 ms per call without, 2.6-3.1 with; into L1 instead,
    /// 2.5-3.3, no better).
    /// </summary>
    private unsafe void PrefetchNext(int first, int count, int head, int offset, int bytes)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        int c = first / ChunkRows;
        if (c >= _allocated) return;
        count = Math.Min(count, ChunkRows - first % ChunkRows);
        fixed (byte* chunk = _chunks[c])
        {
            byte* p = chunk + (head * ChunkRows + first % ChunkRows) * HeadBytes + offset;
            for (int r = 0; r < count; r++, p += HeadBytes)
                for (int b = 0; b < bytes; b += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch1(p + b);
        }
    }

    /// <summary>Row <paramref name="pos"/> as float32 into <paramref name="dst"/> [Width].</summary>
    public void Read(int pos, Span<float> dst)
    {
        for (int h = 0; h < Heads; h++) ReadRow(Type, Segment(pos, h), dst.Slice(h * HeadWidth, HeadWidth));
    }

    /// <summary>One stored row to float32 (vector bodies; <see cref="ReadRowScalar"/> is the reference).</summary>
    public static unsafe void ReadRow(KvCacheType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case KvCacheType.F32: MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst); break;
            case KvCacheType.F16 or KvCacheType.BF16:
            {
                if (src.Length < 2 * dst.Length) throw new ArgumentException("a cache row is shorter than the values asked for");
                fixed (byte* s = src)
                fixed (float* d = dst)
                    if (type == KvCacheType.F16) FloatDot.Widen<FloatDot.F16Decode>(s, d, dst.Length);
                    else FloatDot.Widen<FloatDot.Bf16Decode>(s, d, dst.Length);
                break;
            }
            default:
            {
                Span<float> block = stackalloc float[32];
                fixed (byte* b = src)
                    for (int i = 0; i < dst.Length; i += 32)
                    {
                        var bl = (BlockQ8_0*)b + i / 32;
                        int m = Math.Min(32, dst.Length - i);
                        if (m == 32) { Q8_0Row(bl, dst.Slice(i, 32)); continue; }
                        Dequantize.Q8_0(bl, block);
                        block[..m].CopyTo(dst.Slice(i, m));
                    }
                break;
            }
        }
    }

    /// <summary>One Q8_0 block to float32, d * q: sbytes widened to int32 a vector at a time.</summary>
    private static unsafe void Q8_0Row(BlockQ8_0* b, Span<float> y)
    {
        float d = (float)b->D;
        int w = Vector<sbyte>.Count, f = Vector<float>.Count;
        if (!Vector.IsHardwareAccelerated || 32 % w != 0) { Dequantize.Q8_0(b, y); return; }
        var qs = new ReadOnlySpan<sbyte>(b->Qs, 32);
        for (int j = 0; j < 32; j += w)
        {
            Vector.Widen(new Vector<sbyte>(qs[j..]), out var s0, out var s1);                 // [w] → 2 x [w/2] int16
            Vector.Widen(s0, out var i0, out var i1);
            Vector.Widen(s1, out var i2, out var i3);                                           // 4 x [w/4] int32
            (Vector.ConvertToSingle(i0) * d).CopyTo(y[j..]);
            (Vector.ConvertToSingle(i1) * d).CopyTo(y[(j + f)..]);
            (Vector.ConvertToSingle(i2) * d).CopyTo(y[(j + 2 * f)..]);
            (Vector.ConvertToSingle(i3) * d).CopyTo(y[(j + 3 * f)..]);
        }
    }

    /// <summary>The plain reference of <see cref="ReadRow"/>: element by element, as ggml's to-float functions.</summary>
    public static unsafe void ReadRowScalar(KvCacheType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int i = 0; i < dst.Length; i++)
            dst[i] = type switch
            {
                KvCacheType.F32 => MemoryMarshal.Cast<byte, float>(src)[i],
                KvCacheType.F16 => (float)MemoryMarshal.Cast<byte, Half>(src)[i],
                KvCacheType.BF16 => Dequantize.Bf16ToFloat(MemoryMarshal.Cast<byte, ushort>(src)[i]),
                _ => (float)MemoryMarshal.Read<Half>(src[(i / 32 * 34)..]) * (sbyte)src[i / 32 * 34 + 2 + i % 32],
            };
    }

    /// <summary>The stored bytes of row <paramref name="pos"/> (tests compare the readers on them).</summary>
    internal ReadOnlySpan<byte> RowBytesAt(int pos)
    {
        if (Heads == 1) return _chunks[pos / ChunkRows].AsSpan(pos % ChunkRows * RowBytes, RowBytes);
        var row = new byte[RowBytes];                  // the heads' bytes in row order (a copy)
        for (int h = 0; h < Heads; h++) Segment(pos, h).CopyTo(row.AsSpan(h * HeadBytes));
        return row;
    }
}
