using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Weight tiles for the int8 GEMM (<see cref="GemmInt8{TMicro}"/> on every instruction set): a row's blocks unpacked
/// once per tile to bytes q with per-block (or per-16) d and m, w = d·q + m, then reused for every token.
/// 128-bit vector operations, so every instruction set runs it natively; the lane tiles' nibble split and scales at the
/// widest width the machine has.
/// </summary>
internal static unsafe class Int8Tiles
{
    /// <summary>Columns per unpacked slice (one K-quant super-block, 8 blocks of 32).</summary>
    public const int KBlock = 256;
    public const int BlocksPerSlice = KBlock / 32;
    /// <summary>Rows of a tile (<see cref="TiledGemm{TKernel}.RowBlock"/>): the block stride of the lane layout's scales.</summary>
    public const int TileRows = 64;

    /// <summary>d and m per 32-element block: 1, or 2 for Q6_K (a scale per 16 elements).</summary>
    public static int ScalesPerBlock(DType t) => t == DType.Q6_K ? 2 : 1;

    /// <summary>
    /// Whether the int8 GEMM can multiply <paramref name="t"/> against Q8_K activations (a scale per 256, as its
    /// matrix-vector kernels do) with the integer sub-block scales of <see cref="UnpackQ4_K"/>, rather than against
    /// Q8_0 activations with float scales per 32 from <see cref="Unpack"/>; each micro-kernel decides whether it does
    /// (<see cref="IInt8Micro.UsesQ8K"/>).
    /// </summary>
    public static bool UsesQ8K(DType t) => t == DType.Q4_K;

    /// <summary>Blocks [b0, b0 + count) of row r as q bytes (element order) with per-32 d and m: w = d·q + m
    /// (8-bit formats and Q5_K: q = 16·high + low). Read from the interleaved copy where the matrix has one
    /// (<see cref="WeightMatrix.Interleaved"/>, the decode kernels' layout), so prompts and decoding read one copy of
    /// the weights and the memory map's pages go cold; else from the stored rows.</summary>
    public static void Unpack(WeightMatrix w, int r, int b0, int count, byte* q, byte* high, float* d, float* m)
    {
        var mask = Vector128.Create((byte)0x0F);
        var src = BlockSource.Of(w, r);
        switch (w.Type)
        {
            case DType.Q6_K:
                // q (0..63) in element order as low nibble + high 2 bits; d·sc and −32·d·sc per 16 elements.
                for (int i = 0; i < count; i += 8)
                {
                    byte* blk = src.Block((b0 + i) / 8);
                    float sd = HalfBits.ToFloat(src.Half(blk, 208, 0));
                    for (int half = 0; half < 2; half++)
                        for (int k = 0; k < 2; k++)
                        {
                            int o = 32 * i + 128 * half + 16 * k;
                            var (q1, q2, q3, q4) = Q6Quarters(src, blk, half, k);
                            StoreQ6(q1, q + o, high + o);
                            StoreQ6(q2, q + o + 32, high + o + 32);
                            StoreQ6(q3, q + o + 64, high + o + 64);
                            StoreQ6(q4, q + o + 96, high + o + 96);
                        }
                    for (int s16 = 0; s16 < 16; s16++)
                    {
                        // scales[s16]: stored at 192 + s16; interleaved in pairs (Interleave's Q6_K scale pairs)
                        sbyte sc = (sbyte)(src.Grouped ? blk[Interleave.Q6_KScales + 32 * (s16 / 2) + 2 * src.R + s16 % 2] : blk[192 + s16]);
                        float ds = sd * sc;
                        d[2 * i + s16] = ds;
                        m[2 * i + s16] = -32 * ds;
                    }
                }
                break;
            case DType.Q8_0:
                for (int i = 0; i < count; i++)
                {
                    byte* blk = src.Block(b0 + i);
                    for (int h = 0; h < 2; h++)
                    {
                        var u = src.Quants(blk, 2, 32, 16 * h) ^ Vector128.Create((byte)0x80);     // q + 128
                        (u & mask).Store(q + 32 * i + 16 * h);
                        (Vector128.ShiftRightLogical(u.AsUInt16(), 4).AsByte() & mask).Store(high + 32 * i + 16 * h);
                    }
                    d[i] = HalfBits.ToFloat(src.Half(blk, 0, 0));
                    m[i] = -128 * d[i];
                }
                break;
            case DType.Q4_0 or DType.Q4_1:
                // the same nibbles after d (Q4_0) or d, m (Q4_1): w = d·q − 8d, or d·q + m (Q4_1 has no interleaved layout)
                int qsAt = w.Type == DType.Q4_0 ? sizeof(BlockQ4_0) - 16 : sizeof(BlockQ4_1) - 16;
                for (int i = 0; i < count; i++)
                {
                    byte* blk = src.Block(b0 + i);
                    var v = src.Quants(blk, qsAt, 32, 0);
                    (v & mask).Store(q + 32 * i);
                    (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(q + 32 * i + 16);
                    d[i] = HalfBits.ToFloat(src.Half(blk, 0, 0));
                    m[i] = w.Type == DType.Q4_0 ? -8 * d[i] : HalfBits.ToFloat(((BlockQ4_1*)blk)->M);
                }
                break;
            case DType.Q4_K:
                // one super-block per slice (b0 and count are multiples of 8 since cols % 256 == 0)
                for (int i = 0; i < count; i += 8)
                {
                    byte* blk = src.Block((b0 + i) / 8);
                    float sd = HalfBits.ToFloat(src.Half(blk, 0, 0)), sm = HalfBits.ToFloat(src.Half(blk, 2, Interleave.Q4_KDMin));
                    Q4_KQuants(src, blk, q + 32 * i);
                    for (int j = 0; j < 8; j++)
                    {
                        Q4_KScaleMin(src, blk, j, out int sc, out int mn);
                        d[i + j] = sd * sc;
                        m[i + j] = -sm * mn;
                    }
                }
                break;
            case DType.Q5_K:
                // ggml dequantize_row_q5_K: per 64 elements j, element 64j + l = low nibble of qs[32j + l] + 16·bit 2j
                // of qh[l], element 64j + 32 + l = high nibble + 16·bit 2j + 1; sub-block s = 2j, 2j + 1 has d·sc and
                // dmin·m. q = low + 16·high with the fifth bit as the high plane (0 or 1).
                var one = Vector128.Create((byte)1);
                for (int i = 0; i < count; i += 8)
                {
                    var blk = (BlockQ5_K*)src.Block((b0 + i) / 8);
                    float sd = HalfBits.ToFloat(blk->D), sm = HalfBits.ToFloat(blk->DMin);
                    for (int g = 0; g < 4; g++)
                        for (int h = 0; h < 2; h++)
                        {
                            var v = Vector128.Load(blk->Qs + 32 * g + 16 * h);
                            var bits = Vector128.Load(blk->Qh + 16 * h);
                            int o = 32 * i + 64 * g + 16 * h;
                            (v & mask).Store(q + o);
                            (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(q + o + 32);
                            (Vector128.ShiftRightLogical(bits.AsUInt16(), 2 * g).AsByte() & one).Store(high + o);
                            (Vector128.ShiftRightLogical(bits.AsUInt16(), 2 * g + 1).AsByte() & one).Store(high + o + 32);
                        }
                    for (int j = 0; j < 8; j++)
                    {
                        KQuant.ScaleMin(j, blk->Scales, out int sc, out int mn);
                        d[i + j] = sd * sc;
                        m[i + j] = -sm * mn;
                    }
                }
                break;
            default:
                throw new NotSupportedException($"int8 GEMM for {w.Type}");
        }
    }

    /// <summary>Super-block <paramref name="s"/> of row r for the Q8_K path, integer scales kept: <see cref="UnpackQ4_K"/>,
    /// <see cref="UnpackQ5_K"/> or <see cref="UnpackQ6_K"/> by the matrix's type.</summary>
    public static void UnpackQ8K(WeightMatrix w, int r, int s, byte* q, int* scales, float* m)
    {
        switch (w.Type)
        {
            case DType.Q4_K: UnpackQ4_K(w, r, s, q, scales, m); break;
            case DType.Q5_K: UnpackQ5_K(w, r, s, q, scales, m); break;
            case DType.Q6_K: UnpackQ6_K(w, r, s, q, scales, m); break;
            default: throw new NotSupportedException($"int8 GEMM against Q8_K activations for {w.Type}");
        }
    }

    /// <summary>
    /// Super-block <paramref name="s"/> of Q4_K row r for the Q8_K path (<see cref="UsesQ8K"/>): its 256 q bytes in
    /// element order as <see cref="Unpack"/> writes them, and its 6-bit scales and mins kept as integers (ggml
    /// dequantize_row_q4_K: w = d·sc_j·q − dmin·m_j in sub-block j): scales[j] = sc_j·0x10001 (the scale in both int16
    /// halves, for vpmaddwd), mins[p] = m_2p | m_2p+1 &lt;&lt; 16 (p = 0..3), then mins[4] = d and mins[5] = −dmin.
    /// </summary>
    public static void UnpackQ4_K(WeightMatrix w, int r, int s, byte* q, int* scales, float* mins)
    {
        var src = BlockSource.Of(w, r);
        byte* blk = src.Block(s);
        Q4_KQuants(src, blk, q);
        for (int j = 0; j < 8; j += 2)
        {
            Q4_KScaleMin(src, blk, j, out int sc0, out int m0);
            Q4_KScaleMin(src, blk, j + 1, out int sc1, out int m1);
            scales[j] = sc0 * 0x10001;
            scales[j + 1] = sc1 * 0x10001;
            ((int*)mins)[j / 2] = m0 | m1 << 16;
        }
        mins[4] = HalfBits.ToFloat(src.Half(blk, 0, 0));
        mins[5] = -HalfBits.ToFloat(src.Half(blk, 2, Interleave.Q4_KDMin));
    }

    /// <summary>
    /// Super-block <paramref name="s"/> of Q5_K row r for the Q8_K path (<see cref="IInt8Micro.UsesQ8K"/>), as
    /// <see cref="UnpackQ4_K"/>: q = low nibble + 16·fifth bit (0..31) in element order (ggml dequantize_row_q5_K: per
    /// 64 elements g, the low nibbles of qs[32g..32g + 31] with bit 2g of qh, then the high nibbles with bit 2g + 1), the
    /// scales and mins as integers in the same places. Q5_K has no interleaved copy: the stored rows.
    /// </summary>
    public static void UnpackQ5_K(WeightMatrix w, int r, int s, byte* q, int* scales, float* mins)
    {
        var blk = (BlockQ5_K*)(w.Row(r) + (long)s * sizeof(BlockQ5_K));
        var mask = Vector128.Create((byte)0x0F);
        var one = Vector128.Create((byte)1);
        for (int g = 0; g < 4; g++)
            for (int h = 0; h < 2; h++)
            {
                var v = Vector128.Load(blk->Qs + 32 * g + 16 * h);
                var bits = Vector128.Load(blk->Qh + 16 * h);
                var b0 = Vector128.ShiftRightLogical(bits.AsUInt16(), 2 * g).AsByte() & one;       // 0 or 1 per byte: the
                var b1 = Vector128.ShiftRightLogical(bits.AsUInt16(), 2 * g + 1).AsByte() & one;   // 16-bit shift left by 4 stays in the byte
                ((v & mask) | Vector128.ShiftLeft(b0.AsUInt16(), 4).AsByte()).Store(q + 64 * g + 16 * h);
                ((Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask) | Vector128.ShiftLeft(b1.AsUInt16(), 4).AsByte()).Store(q + 64 * g + 32 + 16 * h);
            }
        for (int j = 0; j < 8; j += 2)
        {
            KQuant.ScaleMin(j, blk->Scales, out int sc0, out int m0);
            KQuant.ScaleMin(j + 1, blk->Scales, out int sc1, out int m1);
            scales[j] = sc0 * 0x10001;
            scales[j + 1] = sc1 * 0x10001;
            ((int*)mins)[j / 2] = m0 | m1 << 16;
        }
        mins[4] = HalfBits.ToFloat(blk->D);
        mins[5] = -HalfBits.ToFloat(blk->DMin);
    }

    /// <summary>
    /// Super-block <paramref name="s"/> of Q6_K row r for the Q8_K path (<see cref="IInt8Micro.UsesQ8K"/>):
    /// its 256 6-bit q (0..63) in element order in one plane (ggml dequantize_row_q6_K: w = d·sc_j·(q − 32) in
    /// sub-block j of 16), the int8 scales kept as integers: scales[j] = sc_j·0x10001 (j = 0..15, for vpmaddwd), and in
    /// <paramref name="m"/> the scale pairs for the −32 term, ((int*)m)[p] = sc_2p | sc_2p+1 &lt;&lt; 16 (p = 0..7, int16
    /// halves), then m[8] = d.
    /// </summary>
    public static void UnpackQ6_K(WeightMatrix w, int r, int s, byte* q, int* scales, float* m)
    {
        var src = BlockSource.Of(w, r);
        byte* blk = src.Block(s);
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 2; k++)
            {
                byte* o = q + 128 * half + 16 * k;
                var (q1, q2, q3, q4) = Q6Quarters(src, blk, half, k);
                q1.Store(o); q2.Store(o + 32); q3.Store(o + 64); q4.Store(o + 96);
            }
        for (int j = 0; j < 16; j += 2)
        {
            // scales[j]: stored at 192 + j; interleaved in pairs (Interleave's Q6_K scale pairs)
            int s0 = (sbyte)(src.Grouped ? blk[Interleave.Q6_KScales + 32 * (j / 2) + 2 * src.R] : blk[192 + j]);
            int s1 = (sbyte)(src.Grouped ? blk[Interleave.Q6_KScales + 32 * (j / 2) + 2 * src.R + 1] : blk[192 + j + 1]);
            scales[j] = (ushort)(short)s0 * 0x10001;
            scales[j + 1] = (ushort)(short)s1 * 0x10001;
            ((int*)m)[j / 2] = (ushort)(short)s0 | s1 << 16;
        }
        m[8] = HalfBits.ToFloat(src.Half(blk, 208, 0));
    }

    /// <summary>
    /// Whether the int8 GEMM's tile can hold <paramref name="t"/> in the lane layout of <see cref="UnpackLanes"/> (the
    /// 4-bit formats, which every micro-kernel multiplies through <see cref="Int8Micro4{TOps, TX, TAcc, TF}"/> or
    /// <see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>, <see cref="LaneTiles"/>); it does where the matrix has an
    /// interleaved copy in that layout (Q4_0, Q4_K).
    /// </summary>
    public static bool InLanes(DType t) => t is DType.Q4_0 or DType.Q4_K;

    /// <summary>Rows of a lane group: those of an <see cref="Interleave"/> group.</summary>
    public const int Lanes = Interleave.Rows;
    /// <summary>Bytes of one 32-element block of a lane group: 8 chunks of 64 bytes (4 k of 16 rows each).</summary>
    public const int LaneBlockBytes = Lanes * 32;
    /// <summary>Bytes of one lane group of a slice.</summary>
    public const int LaneGroupBytes = BlocksPerSlice * LaneBlockBytes;

    /// <summary>
    /// Rows [r0, r0 + nrPad) × blocks [b0, b0 + count) of a Q4_0 or Q4_K matrix from its interleaved copy
    /// (<see cref="WeightMatrix.Interleaved"/>; r0 a multiple of <see cref="Lanes"/>) in the lane layout
    /// (<see cref="LaneTiles"/>): the q bytes of <see cref="Unpack"/> (element order) with 16 rows interleaved as in the
    /// copy, per group of 16 rows (at <paramref name="q"/> + group · <see cref="LaneGroupBytes"/>) and block b (+ b ·
    /// <see cref="LaneBlockBytes"/>) 8 chunks of 64 bytes, chunk j holding q[4j..4j + 3] of row R at 4R. Scales, per
    /// block (or slot) b and row r at [<see cref="TileRows"/>·b + r]: d and m of <see cref="Unpack"/>; in Q8_K mode
    /// (<paramref name="q8k"/>) the values of <see cref="UnpackQ4_K"/> in the same places: d as int32 sc·0x10001 of
    /// sub-block b, m slots 0..3 the int16 pairs of mins, slot 4 d and slot 5 −dmin. Rows past the matrix are zero, as in
    /// the copy.
    /// <para>
    /// The copy's quant bytes are in lanes already, so a chunk of 64 nibble bytes becomes two chunks of q with one and,
    /// one shift and one and per 16 bytes (Q4_0's byte k holds elements k and k + 16: its chunk j gives q chunks j and
    /// j + 4; Q4_K's chunk j holds sub-block 2(j/8) in its low nibbles and 2(j/8) + 1 in its high ones, at q chunk j % 8),
    /// and the scales need no transposition either: the copy holds each half, scale and min of the 16 rows side by
    /// side, so 16 rows' values are widened and converted in one 512-bit register (<see cref="LaneScales{TW, TV}"/>;
    /// 256 or 128 bits without AVX-512). In the row layout each row's bytes were gathered from 4 chunks and its scale
    /// converted alone (perf, V2-Lite Q4_0 prefill: ~11% of the time in unpacking, amortized over the ~48 tokens an
    /// expert sees in a 512-token prompt).
    /// </para>
    /// </summary>
    public static void UnpackLanes(WeightMatrix w, int r0, int nrPad, int b0, int count, bool q8k, byte* q, float* d, float* m)
    {
        if (w.Interleaved == null || !InLanes(w.Type)) throw new ArgumentException($"{w.Name}: no interleaved copy of 4-bit rows");
        long groupBytes = Interleave.GroupBytes(w.Type, w.Cols);
        int blockBytes = Interleave.BlockBytes(w.Type);
        for (int g = 0; g * Lanes < nrPad; g++)
        {
            byte* group = w.Interleaved + (r0 / Lanes + g) * groupBytes, qg = q + g * LaneGroupBytes;
            if (w.Type == DType.Q4_0)
                for (int i = 0; i < count; i++)
                {
                    byte* col = group + (long)(b0 + i) * blockBytes;   // [16 halves d][4 chunks of 64 nibble bytes]
                    SplitNibbles(col + 32, 4, qg + i * LaneBlockBytes, qg + i * LaneBlockBytes + 4 * 64);
                }
            else   // Q4_K: one super-block per slice
                for (int i = 0; i < 4; i++)   // chunks 8i..8i + 7: sub-blocks 2i (low nibbles), 2i + 1 (high)
                    SplitNibbles(group + (long)(b0 / 8) * blockBytes + Interleave.Q4_KQuants + 8 * 64 * i, 8, qg + 2 * i * LaneBlockBytes, qg + (2 * i + 1) * LaneBlockBytes);
            // the JIT keeps one of the three
            if (Vector512.IsHardwareAccelerated) LaneScales<FloatDot.W512, Vector512<float>>(w.Type, group, blockBytes, b0, count, q8k, d + Lanes * g, m + Lanes * g);
            else if (Vector256.IsHardwareAccelerated) LaneScales<FloatDot.W256, Vector256<float>>(w.Type, group, blockBytes, b0, count, q8k, d + Lanes * g, m + Lanes * g);
            else LaneScales<FloatDot.W128, Vector128<float>>(w.Type, group, blockBytes, b0, count, q8k, d + Lanes * g, m + Lanes * g);
            // The group's next slice (the same columns on, contiguous in the copy) is read by the next call, after this
            // slice's micro-kernels have run: requested now into L2, so that the split does not wait on memory at
            // the first touch of each line, as it did (the copy of an MoE layer's experts comes from DRAM every call).
            int per = w.Type == DType.Q4_K ? 8 : 1, next = b0 + count, left = w.Cols / 32 - next;   // blocks per column of the copy
            if (Sse.IsSupported && left > 0)
            {
                byte* p = group + (long)(next / per) * blockBytes;
                long bytes = (long)Math.Min(count, left) / per * blockBytes;
                for (long o = 0; o < bytes; o += 64) Sse.Prefetch1(p + o);
            }
        }
    }

    /// <summary>
    /// The scales of <see cref="UnpackLanes"/> for the 16 rows of one interleaved group (its block columns at
    /// <paramref name="group"/>, <paramref name="blockBytes"/> apart) to d and m from the group's first row on, TW.Count
    /// rows per vector: the copy keeps every per-row value of a block column side by side (16 halves d, Q4_K's 16
    /// halves dmin, its 6-bit scales as 16 bytes per sub-block and its mins as 16 byte pairs per pair of sub-blocks,
    /// <see cref="Interleave"/>), so each is one widening load (an odd sub-block's mins: the same 16 pairs read one
    /// byte on, their low bytes kept), then the same float operations as <see cref="Unpack"/>, lane by lane. Not
    /// inlined: called once per group, and its own inlining budget keeps the width's operators inline.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LaneScales<TW, TV>(DType t, byte* group, int blockBytes, int b0, int count, bool q8k, float* d, float* m)
        where TW : FloatDot.IWidth<TV> where TV : unmanaged
    {
        const int ld = TileRows;
        for (int l = 0; l < Lanes; l += TW.Count)
        {
            if (t == DType.Q4_0)
            {
                for (int i = 0; i < count; i++)
                {
                    var dv = HalfBits.ToFloat<TW, TV>(TW.WidenU16((ushort*)(group + (long)(b0 + i) * blockBytes) + l));
                    TW.Store(dv, d + ld * i + l);
                    TW.Store(TW.Multiply(dv, TW.Broadcast(-8f)), m + ld * i + l);   // −8·d, as Unpack
                }
                continue;
            }
            byte* sb = group + (long)(b0 / 8) * blockBytes, scales = sb + Interleave.Q4_KScales + l;
            var sd = HalfBits.ToFloat<TW, TV>(TW.WidenU16((ushort*)sb + l));
            var negSm = TW.Multiply(HalfBits.ToFloat<TW, TV>(TW.WidenU16((ushort*)(sb + Interleave.Q4_KDMin) + l)), TW.Broadcast(-1f));   // exact negation
            for (int p = 0; p < 4; p++)
            {
                byte* pairs = sb + Interleave.Q4_KMins + 32 * p + 2 * l;   // row R: m_2p at 2R, m_2p+1 at 2R + 1
                if (q8k)
                {
                    var s0 = TW.WidenU8(scales + 32 * p);
                    var s1 = TW.WidenU8(scales + 32 * p + 16);
                    TW.Store(TW.Or(s0, TW.ShiftLeft(s0, 16)), d + ld * 2 * p + l);         // sc·0x10001
                    TW.Store(TW.Or(s1, TW.ShiftLeft(s1, 16)), d + ld * (2 * p + 1) + l);
                    var pair = TW.WidenU16((ushort*)pairs);
                    TW.Store(TW.Or(TW.And(pair, 0xFFu), TW.ShiftLeft(TW.And(pair, 0xFF00u), 8)), m + ld * p + l);   // m_2p | m_2p+1 << 16
                    continue;
                }
                var m0 = TW.IntToFloat(TW.And(TW.WidenU16((ushort*)pairs), 0xFFu));
                var m1 = TW.IntToFloat(TW.And(TW.WidenU16((ushort*)(pairs + 1)), 0xFFu));
                TW.Store(TW.Multiply(sd, TW.IntToFloat(TW.WidenU8(scales + 32 * p))), d + ld * 2 * p + l);   // d·sc, as Unpack
                TW.Store(TW.Multiply(sd, TW.IntToFloat(TW.WidenU8(scales + 32 * p + 16))), d + ld * (2 * p + 1) + l);
                TW.Store(TW.Multiply(negSm, m0), m + ld * 2 * p + l);                                     // −dmin·m
                TW.Store(TW.Multiply(negSm, m1), m + ld * (2 * p + 1) + l);
            }
            if (q8k)
            {
                TW.Store(sd, m + 4 * ld + l);
                TW.Store(negSm, m + 5 * ld + l);
            }
        }
    }

    /// <summary>
    /// <paramref name="chunks"/> chunks of 64 nibble bytes at <paramref name="src"/>: low nibbles to <paramref name="low"/>,
    /// high nibbles to <paramref name="high"/>, byte for byte (chunk for chunk).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SplitNibbles(byte* src, int chunks, byte* low, byte* high)
    {
        if (Vector512.IsHardwareAccelerated)   // a chunk per register (the JIT keeps one of the two loops)
        {
            var mask512 = Vector512.Create((byte)0x0F);
            for (int o = 0; o < 64 * chunks; o += 64)
            {
                var v = Vector512.Load(src + o);
                (v & mask512).Store(low + o);
                (Vector512.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask512).Store(high + o);
            }
            return;
        }
        var mask = Vector128.Create((byte)0x0F);
        for (int o = 0; o < 64 * chunks; o += 16)
        {
            var v = Vector128.Load(src + o);
            (v & mask).Store(low + o);
            (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(high + o);
        }
    }

    /// <summary>A Q4_K super-block's 256 nibbles in element order (ggml dequantize_row_q4_K: per 64 elements g, the
    /// low nibbles of qs[32g..32g + 31], then their high nibbles).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_KQuants(in BlockSource src, byte* blk, byte* q)
    {
        var mask = Vector128.Create((byte)0x0F);
        for (int g = 0; g < 4; g++)
            for (int h = 0; h < 2; h++)   // 128-bit halves: Vector256 is emulated on Arm64
            {
                var v = src.Quants(blk, 16, Interleave.Q4_KQuants, 32 * g + 16 * h);
                (v & mask).Store(q + 64 * g + 16 * h);
                (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(q + 64 * g + 32 + 16 * h);
            }
    }

    /// <summary>Scale and min of sub-block j: <see cref="KQuant.ScaleMin"/> of a stored block, or the bytes
    /// <see cref="Interleave"/> unpacked them to in a group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_KScaleMin(in BlockSource src, byte* blk, int j, out int sc, out int mn)
    {
        if (src.Grouped) { sc = blk[Interleave.Q4_KScales + 16 * j + src.R]; mn = blk[Interleave.Q4_KMins + 32 * (j / 2) + 2 * src.R + j % 2]; }
        else KQuant.ScaleMin(j, ((BlockQ4_K*)blk)->Scales, out sc, out mn);
    }

    /// <summary>
    /// Where row r's blocks are read: its stored blocks, or its lane of a group of the interleaved copy
    /// (<see cref="Interleave"/>'s layout: per block column 16 halves d, then 64-byte chunks with quant bytes 4j..4j+3
    /// of row R at 4R). Offsets are given for both layouts; the quant bytes come out in stored order either way.
    /// </summary>
    private readonly struct BlockSource(byte* base0, long blockBytes, int r, bool grouped)
    {
        public readonly bool Grouped = grouped;
        /// <summary>The row's lane in its group (interleaved copy).</summary>
        public readonly int R = r;

        public static BlockSource Of(WeightMatrix w, int r) => w.Interleaved != null
            ? new(w.Interleaved + r / Interleave.Rows * Interleave.GroupBytes(w.Type, w.Cols), Interleave.BlockBytes(w.Type), r % Interleave.Rows, true)
            : new(w.Row(r), w.Type.BlockBytes(), r, false);

        /// <summary>Block b of the row (stored) or block column b of its group (interleaved).</summary>
        public byte* Block(int b) => base0 + b * blockBytes;

        /// <summary>A half: at <paramref name="stored"/> in a stored block, the row's of the 16 at <paramref name="grouped"/> in a group.</summary>
        public Half Half(byte* blk, int stored, int grouped) => Grouped ? ((Half*)(blk + grouped))[R] : *(Half*)(blk + stored);

        /// <summary>Quant bytes [o, o + 16) of the row's block: the quant array starts at <paramref name="stored"/> in a
        /// stored block; in a group its 4-byte words are the row's lanes of the chunks from <paramref name="chunks"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector128<byte> Quants(byte* blk, int stored, int chunks, int o)
        {
            if (!Grouped) return Vector128.Load(blk + stored + o);
            uint* c = (uint*)(blk + chunks + 16 * o) + R;   // chunk o/4 (64 bytes = 16 words each), the row's word
            return Vector128.Create(c[0], c[16], c[32], c[48]).AsByte();
        }
    }

    /// <summary>
    /// 16 q (0..63) of each quarter of half <paramref name="half"/> of a Q6_K block, elements 128·half + l, + 32, + 64,
    /// + 96 for l in [16k, 16k + 16) (ggml dequantize_row_q6_K): the low or high nibbles of ql[64·half + l] and
    /// ql[64·half + 32 + l] with bits 0-1, 2-3, 4-5, 6-7 of qh[32·half + l] as bits 4-5 (16-bit shifts; the bits shifted
    /// in from the neighbour byte are masked off).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<byte>, Vector128<byte>, Vector128<byte>, Vector128<byte>) Q6Quarters(in BlockSource src, byte* blk, int half, int k)
    {
        var low4 = Vector128.Create((byte)0x0F);
        var m30 = Vector128.Create((byte)0x30);
        var l0 = src.Quants(blk, 0, Interleave.Q6_KLow, 64 * half + 16 * k);
        var l1 = src.Quants(blk, 0, Interleave.Q6_KLow, 64 * half + 32 + 16 * k);
        var h = src.Quants(blk, 128, Interleave.Q6_KHigh, 32 * half + 16 * k);
        return ((l0 & low4) | (Vector128.ShiftLeft(h.AsUInt16(), 4).AsByte() & m30),
                (l1 & low4) | (Vector128.ShiftLeft(h.AsUInt16(), 2).AsByte() & m30),
                (Vector128.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & low4) | (h & m30),
                (Vector128.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & low4) | (Vector128.ShiftRightLogical(h.AsUInt16(), 2).AsByte() & m30));
    }

    /// <summary>A Q6_K q (0..63) as two planes: the low nibble, and the two high bits as 0..3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreQ6(Vector128<byte> v, byte* q, byte* high)
    {
        (v & Vector128.Create((byte)0x0F)).Store(q);
        (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x03)).Store(high);   // 16-bit shift: mask the neighbour's bits
    }

}
