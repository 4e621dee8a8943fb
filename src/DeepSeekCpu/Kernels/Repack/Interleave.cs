using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Kernels.Arm;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.X86;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Repack;

/// <summary>
/// Weights re-laid-out once at load for the decode kernels (matrix-vector products): groups of <see cref="Rows"/>
/// rows whose blocks are interleaved, so one broadcast of 4 activation bytes meets 4 weight bytes of every row of the
/// group in one register and each 32-bit lane accumulates one row's dot product (no horizontal sums, no per-block
/// scale gathers). The idea is that of ik_llama.cpp's <c>_R4</c>/<c>_R8</c> types and llama.cpp's CPU "repack" buffer
/// type (e.g. block_q4_0x8); the layout here is our own: 16 rows (one 512-bit register of int32 lanes).
/// <para>
/// Layout of Q4_0 and Q8_0 (ggml block_q4_0 / block_q8_0: a half scale d, then 16 or 32 quant bytes), group g holds
/// rows 16g..16g+15, and per block column b (32 weights):
/// <code>
///   [16 halves: d of rows 0..15]                        32 bytes
///   chunk j = 0 .. Q/4-1 (Q = 16 or 32 quant bytes):    64 bytes each
///       bytes 4r..4r+3 = quant bytes 4j..4j+3 of row r's block b
/// </code>
/// The quant bytes are unchanged (Q4_0 byte k keeps element k in its low nibble and k+16 in its high nibble), so
/// chunk j of Q4_0 multiplies activation bytes 4j..4j+3 (low nibbles) and 16+4j..16+4j+3 (high nibbles); chunk j of
/// Q8_0 multiplies activation bytes 4j..4j+3. Rows past the matrix end (the last group) are zero (d = 0).
/// Same bytes as the original rows (+ padding of the last group): Q4_0 288 bytes, Q8_0 544 bytes per 16 blocks.
/// </para>
/// <para>
/// Q4_K (ggml block_q4_K: d, dmin, 12 bytes of packed 6-bit scales and mins of 8 sub-blocks of 32, 128 nibble bytes
/// where byte 32i + l holds element 64i + l low and 64i + 32 + l high), per super-block (256 weights) of 16 rows:
/// <code>
///   [16 halves d][16 halves dmin]                            64 bytes
///   scales: sub-block s = 0..7, row r: byte 16s + r          128 bytes (unpacked 6-bit values)
///   mins: pair p = 0..3, row r: bytes 32p + 2r, +1 = m[2p], m[2p+1]   128 bytes
///   chunk j = 0..31: bytes 4r..4r+3 = quant bytes 4j..4j+3 of row r   32 × 64 bytes
/// </code>
/// 2368 bytes per 16 super-blocks (2304 stored: the scales are unpacked). Chunk j belongs to sub-blocks 2(j/8) (low
/// nibbles) and 2(j/8)+1 (high nibbles); the mins sit in pairs so one vpmaddwd meets two sub-blocks' activation sums.
/// </para>
/// <para>
/// Q6_K (ggml block_q6_K: ql[128], qh[64], 16 int8 scales of 16 weights each, d; bit positions in
/// <see cref="BlockQ6_K"/>), per super-block of 16 rows:
/// <code>
///   [16 halves d]                                                    32 bytes
///   scale pairs: k = 0..7, row r: bytes 32k + 2r, +1 = scales[2k], scales[2k+1]   256 bytes
///   ql chunk j = 0..31: bytes 4r..4r+3 = ql[4j..4j+3] of row r          32 × 64 bytes
///   qh chunk j = 0..15: bytes 4r..4r+3 = qh[4j..4j+3] of row r          16 × 64 bytes
/// </code>
/// 3360 bytes, the stored size. Scale pair k = 4h + i serves quarter i of half h (elements 128h + 32i + l): scales[2k]
/// for l &lt; 16, scales[2k+1] for l ≥ 16.
/// </para>
/// The memory map stays untouched; the int8 prompt GEMM's tiles are unpacked from this copy too (<see cref="Int8Tiles"/>),
/// so a matrix with a copy is read from one place (the float GEMM's formats still read <see cref="WeightMatrix.Data"/>).
/// </summary>
internal static unsafe class Interleave
{
    /// <summary>Rows per interleaved group.</summary>
    public const int Rows = 16;

    private const long HugePage = 2 << 20;

    /// <summary>Formats with an interleaved layout.</summary>
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q8_0 or DType.Q4_K or DType.Q6_K;

    /// <summary>Bytes of one block column (32 or 256 weights) of a group: 16 rows' scales and quant bytes.</summary>
    public static int BlockBytes(DType t) => t switch
    {
        DType.Q4_K => Q4_KQuants + Rows * 128,
        DType.Q6_K => Q6_KHigh + Rows * 64,
        _ => 32 + Rows * QuantBytes(t),
    };

    /// <summary>Q4_K: offsets of the dmin halves, scales, mins and quant chunks in a super-block of a group.</summary>
    public const int Q4_KDMin = 32, Q4_KScales = 64, Q4_KMins = 192, Q4_KQuants = 320;

    /// <summary>Q6_K: offsets of the scale pairs, the ql chunks and the qh chunks in a super-block of a group.</summary>
    public const int Q6_KScales = 32, Q6_KLow = 288, Q6_KHigh = 2336;

    private static int QuantBytes(DType t) => t switch { DType.Q4_0 => 16, DType.Q4_K => 128, _ => 32 };

    /// <summary>Bytes of one group of rows of a matrix with <paramref name="cols"/> columns.</summary>
    public static long GroupBytes(DType t, int cols) => (long)(cols / t.BlockSize()) * BlockBytes(t);

    /// <summary>Groups of a matrix with <paramref name="rows"/> rows (the last one padded with zero rows).</summary>
    public static int Groups(int rows) => (rows + Rows - 1) / Rows;

    /// <summary>Bytes of the interleaved copy of <paramref name="w"/> (0 for formats without a layout).</summary>
    public static long SizeOf(WeightMatrix w) => Supports(w.Type) ? Groups(w.Rows) * GroupBytes(w.Type, w.Cols) : 0;

    /// <summary>
    /// The group body for weights of <paramref name="t"/> on <paramref name="path"/>: y[0..16) = the dot products of
    /// the group's rows with one token's activations (Q8_0 style); null where no interleaved body pays (the row
    /// bodies over the mapping run instead).
    /// </summary>
    public static delegate*<byte*, ActQ8*, float*, void> GroupDot(DType t, KernelPath path) =>
        X86Bodies(t, path) is { One: not 0 } x86 ? (delegate*<byte*, ActQ8*, float*, void>)x86.One : (t, path) switch
    {
        (DType.Q6_K, KernelPath.Avx2 or KernelPath.Avx2Vnni) => &InterleavedX86.Q6_KAvx2,
        (DType.Q4_0, KernelPath.NeonDp) => &InterleavedArm.Q4_0,
        (DType.Q4_K, KernelPath.NeonDp) => &InterleavedArm.Q4_K,
        (DType.Q6_K, KernelPath.NeonDp) => &InterleavedArm.Q6_K,
        (DType.Q8_0, KernelPath.NeonDp) => &InterleavedArm.Q8_0,
        (DType.Q4_0 or DType.Q8_0 or DType.Q4_K or DType.Q6_K, KernelPath.Scalar) => GroupDotReference(t),
        _ => null,
    };

    /// <summary>
    /// The group body over several tokens for weights of <paramref name="t"/> on <paramref name="path"/>: y[t, 0..16) =
    /// <see cref="GroupDot"/> of token t, for t &lt; n, equal to it bit for bit (each weight chunk unpacked once per
    /// pass over up to 4 tokens); null where only the one-token body exists (callers loop over the tokens).
    /// </summary>
    public static delegate*<byte*, ActQ8*, int, float*, void> GroupDots(DType t, KernelPath path) =>
        (delegate*<byte*, ActQ8*, int, float*, void>)X86Bodies(t, path).Many;

    /// <summary>The x86 bodies that have a one-token and a multi-token entry (the same generic body), or zeros.</summary>
    private static (nint One, nint Many) X86Bodies(DType t, KernelPath path) => (t, path) switch
    {
        (DType.Q4_0, KernelPath.Avx512) => Pair(&InterleavedX86.Q4_0Avx512, &InterleavedX86.Q4_0Avx512),
        (DType.Q4_0, KernelPath.Avx2 or KernelPath.Avx2Vnni) => Pair(&InterleavedX86.Q4_0Avx2, &InterleavedX86.Q4_0Avx2),
        (DType.Q8_0, KernelPath.Avx512 or KernelPath.Avx2Vnni) when AvxVnni.IsSupported => Pair(&InterleavedX86.Q8_0<VnniDot>, &InterleavedX86.Q8_0<VnniDot>),
        (DType.Q8_0, KernelPath.Avx512 or KernelPath.Avx2) => Pair(&InterleavedX86.Q8_0<MaddDot>, &InterleavedX86.Q8_0<MaddDot>),
        (DType.Q4_K, KernelPath.Avx512) => Pair(&InterleavedX86.Q4_KAvx512, &InterleavedX86.Q4_KAvx512),
        (DType.Q4_K, KernelPath.Avx2 or KernelPath.Avx2Vnni) => Pair(&InterleavedX86.Q4_KAvx2, &InterleavedX86.Q4_KAvx2),
        (DType.Q6_K, KernelPath.Avx512) => Pair(&InterleavedX86.Q6_KAvx512, &InterleavedX86.Q6_KAvx512),
        _ => (0, 0),
    };

    private static (nint, nint) Pair(delegate*<byte*, ActQ8*, float*, void> one, delegate*<byte*, ActQ8*, int, float*, void> many) => ((nint)one, (nint)many);

    /// <summary>The scalar specification of the group bodies.</summary>
    public static delegate*<byte*, ActQ8*, float*, void> GroupDotReference(DType t) => t switch
    {
        DType.Q4_0 => &InterleavedReference.Q4_0,
        DType.Q8_0 => &InterleavedReference.Q8_0,
        DType.Q4_K => &InterleavedReference.Q4_K,
        DType.Q6_K => &InterleavedReference.Q6_K,
        _ => null,
    };

    /// <summary>
    /// Gives <paramref name="w"/> an interleaved copy of its rows when <paramref name="path"/> has a group body for its
    /// format; returns the copy's size in bytes (0 when none was made). The copy is freed with the matrix.
    /// </summary>
    public static long Attach(WeightMatrix w, KernelPath path)
    {
        if (!Supports(w.Type) || GroupDot(w.Type, path) == null || w.Interleaved != null || w.Rows == 0) return 0;
        // 2 MiB pages for large copies, as the loader gives the mapping (THP is often "madvise" only): streaming a
        // gigabyte over 4 KiB pages costs a TLB miss, a two-level page walk on a VM, every 4 KiB. Advised before the
        // first touch, so the faults in Pack allocate huge pages.
        long size = SizeOf(w);
        bool huge = size >= HugePage;
        var buf = new NativeBuffer(size, huge ? HugePage : 64);
        if (huge) Platform.MemoryAdvice.HugePages(buf.Pointer, size);
        Pack(w, buf.Pointer);
        w.SetInterleaved(buf.Pointer, buf.Length, buf);
        return buf.Length;
    }

    /// <summary>Writes the interleaved layout of <paramref name="w"/> to <paramref name="dst"/> (Groups × GroupBytes bytes), groups on the worker pool.</summary>
    public static void Pack(WeightMatrix w, byte* dst)
    {
        if (!Supports(w.Type)) throw new ArgumentException($"{w.Name}: {w.Type} has no interleaved layout");
        var job = new PackJob(w, dst);
        WorkerPool.Shared.Run(job, Groups(w.Rows));
    }

    private sealed class PackJob(WeightMatrix w, byte* dst) : IRangeJob
    {
        public void Run(int start, int end)
        {
            int nb = w.Cols / w.Type.BlockSize(), blockBytes = BlockBytes(w.Type), srcBlock = w.Type.BlockBytes();
            long groupBytes = GroupBytes(w.Type, w.Cols);
            for (int g = start; g < end; g++)
            {
                byte* group = dst + g * groupBytes;
                new Span<byte>(group, checked((int)groupBytes)).Clear();    // padding rows: d = 0, quants 0
                for (int r = 0; r < Rows && g * Rows + r < w.Rows; r++)
                {
                    byte* row = w.Row(g * Rows + r);
                    for (int b = 0; b < nb; b++) PackBlock(w.Type, row + b * srcBlock, group + b * blockBytes, r);
                }
            }
        }
    }

    /// <summary>Quant bytes [0, count) of one row's block as 4-byte lanes of row r in 64-byte chunks from <paramref name="chunks"/>.</summary>
    private static void Spread(byte* src, int count, byte* chunks, int r)
    {
        for (int j = 0; j < count / 4; j++) *(uint*)(chunks + 64 * j + 4 * r) = *(uint*)(src + 4 * j);
    }

    /// <summary>Row r's block at <paramref name="src"/> (stored layout) into the interleaved block at <paramref name="blk"/>.</summary>
    private static void PackBlock(DType t, byte* src, byte* blk, int r)
    {
        switch (t)
        {
            case DType.Q4_0 or DType.Q8_0:                                   // [d][qs: 16 or 32 bytes]
                ((ushort*)blk)[r] = *(ushort*)src;
                Spread(src + 2, QuantBytes(t), blk + 32, r);
                break;
            case DType.Q4_K:                                                 // [d][dmin][12 bytes scales/mins][qs: 128]
                ((ushort*)blk)[r] = *(ushort*)src;
                ((ushort*)(blk + Q4_KDMin))[r] = *(ushort*)(src + 2);
                for (int s = 0; s < 8; s++)
                {
                    KQuant.ScaleMin(s, src + 4, out int scale, out int min);
                    blk[Q4_KScales + 16 * s + r] = (byte)scale;
                    blk[Q4_KMins + 32 * (s / 2) + 2 * r + s % 2] = (byte)min;
                }
                Spread(src + 16, 128, blk + Q4_KQuants, r);
                break;
            case DType.Q6_K:                                                 // [ql: 128][qh: 64][scales: 16][d]
                ((ushort*)blk)[r] = *(ushort*)(src + 208);
                for (int k = 0; k < 8; k++)
                {
                    blk[Q6_KScales + 32 * k + 2 * r] = src[192 + 2 * k];
                    blk[Q6_KScales + 32 * k + 2 * r + 1] = src[192 + 2 * k + 1];
                }
                Spread(src, 128, blk + Q6_KLow, r);
                Spread(src + 128, 64, blk + Q6_KHigh, r);
                break;
        }
    }
}
