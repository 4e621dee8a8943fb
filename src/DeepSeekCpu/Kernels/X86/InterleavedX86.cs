using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// x86 dot products of one interleaved group of 16 rows (<see cref="Interleave"/>) with one token's activations
/// (see <see cref="Reference.InterleavedReference"/> for the maths), and with several tokens' at once (batched
/// decoding, a MoE expert chosen by several tokens): each body is generic over the tokens per pass (<see cref="ITokens"/>,
/// 1-4), so every weight chunk is loaded and unpacked once per pass and each token repeats only its multiplies and
/// its scale step, in the one-token body's order (the results equal it bit for bit). Each 32-bit lane is one row: 4 activation bytes
/// are broadcast to every lane and meet 4 bytes of each row, so a 64-byte weight load feeds 64 multiplies with no
/// shuffle, the 16 rows' scales are one 32-byte load, and nothing is summed horizontally.
/// </summary>
internal static unsafe class InterleavedX86
{
    /// <summary>Prefetch distance (bytes) and its reason: as DotX86.PrefetchDistance, the next 2 KB requested while a block computes.</summary>
    private const int PrefetchDistance = 2048;

    /// <summary>
    /// A half's bits, sign-extended to 32, shifted into a float's field positions give the half's value × 2^-112
    /// exactly (the exponent biases differ by 112): one shift and one mask; the × 2^112 is folded into the scale
    /// multiply that follows (<see cref="HalfBias"/>).
    /// </summary>
    private const int HalfFieldMask = unchecked((int)0x8FFF_E000);
    /// <summary>
    /// The group bodies are compiled once, fully optimized, and never inlined into their one-token entries (a call per
    /// group of 16 rows): inlined at tier 1, Q8_0's and Q4_0's bodies ran out of the JIT's inlining budget, left their
    /// scale helpers as calls and kept their sums on the stack (Q8_0: 42 stack accesses against 1 in the body compiled
    /// alone, `DOTNET_JitDisasm`; the one-token entry is what decoding runs). No speed difference was measured on the
    /// Intel Xeon of the fifteenth session (`DeepSeekCpu.Bench quick --formats Q8_0 --no-gemm --threads 1 --cpu-time`,
    /// three alternations: 1536×1536 102-148 µs either way, the host's noise), so this keeps the code the JIT emits
    /// the same at every tier rather than making it faster.
    /// </summary>
    private const MethodImplOptions BodyOptions = MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization;

    private static float HalfBias => BitConverter.Int32BitsToSingle((127 + 112) << 23);   // 2^112

    /// <summary>Requests the <paramref name="lines"/> (1-9, a constant at every call) cache lines
    /// <see cref="PrefetchDistance"/> past <paramref name="p"/>. Written out rather than as a loop: the JIT does not
    /// unroll the loop, which cost about 6 instructions per line (30 of Q4_0's 130 per block, per its JIT listing);
    /// inlined with a constant count, the untaken tests fold away.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(byte* p, int lines)
    {
        Debug.Assert(lines is >= 1 and <= 9);
        byte* q = p + PrefetchDistance;
        Sse.Prefetch0(q);
        if (lines > 1) Sse.Prefetch0(q + 64);
        if (lines > 2) Sse.Prefetch0(q + 128);
        if (lines > 3) Sse.Prefetch0(q + 192);
        if (lines > 4) Sse.Prefetch0(q + 256);
        if (lines > 5) Sse.Prefetch0(q + 320);
        if (lines > 6) Sse.Prefetch0(q + 384);
        if (lines > 7) Sse.Prefetch0(q + 448);
        if (lines > 8) Sse.Prefetch0(q + 512);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Broadcast512(sbyte* p) => Vector512.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast256(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    /// <summary>16 rows' Q4_0 scales (halves) as floats, exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales16(byte* blk)
    {
        var h = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)blk));
        return (Vector512.ShiftLeft(h, 13) & Vector512.Create(HalfFieldMask)).AsSingle() * Vector512.Create(HalfBias);
    }

    /// <summary>8 rows' scales (halves) as floats, exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales8(byte* blk)
    {
        var h = Avx2.ConvertToVector256Int32(Vector128.Load((short*)blk));
        return (Vector256.ShiftLeft(h, 13) & Vector256.Create(HalfFieldMask)).AsSingle() * Vector256.Create(HalfBias);
    }

    public static void Q4_0Avx512(byte* g, ActQ8* a, float* y) => Q4_0Avx512<T1>(g, a, y);
    public static void Q4_0Avx512(byte* g, ActQ8* a, int n, float* y) => Tokens<Q4_0Body512>(g, a, n, y);

    private readonly struct Q4_0Body512 : IGroupBody
    {
        public static int MaxTokens => 4;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q4_0Avx512<TK>(g, a, y);
    }

    /// <summary>Q4_0, 512-bit: the 16 rows in one pass (<see cref="Q4_0Rows"/>, inlined here).</summary>
    [MethodImpl(BodyOptions)]
    private static void Q4_0Avx512<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens =>
        Q4_0Rows<Q4_0Rows16, Vector512<byte>, Vector512<short>, Vector512<float>, TK>(g, a, 0, y);

    public static void Q4_0Avx2(byte* g, ActQ8* a, float* y) => Q4_0Avx2<T1>(g, a, y);
    public static void Q4_0Avx2(byte* g, ActQ8* a, int n, float* y) => Tokens<Q4_0Body256>(g, a, n, y);

    private readonly struct Q4_0Body256 : IGroupBody
    {
        public static int MaxTokens => 4;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q4_0Avx2<TK>(g, a, y);
    }

    /// <summary>Q4_0, 256-bit: the 16 rows as two halves of 8 (the second pass finds the group and activations in L1).</summary>
    [MethodImpl(BodyOptions)]
    private static void Q4_0Avx2<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens
    {
        Q4_0Rows<Q4_0Rows8, Vector256<byte>, Vector256<short>, Vector256<float>, TK>(g, a, 0, y);
        Q4_0Rows<Q4_0Rows8, Vector256<byte>, Vector256<short>, Vector256<float>, TK>(g, a, 1, y + 8);
    }

    /// <summary>
    /// Q4_0, rows R·h .. R·h + R − 1 of a group (R = <typeparamref name="TW"/>'s rows: 16 at 512 bits, 8 at 256),
    /// 1-4 tokens (<typeparamref name="TK"/>) per pass: per block, 4 chunks of the R rows' bytes unpacked once (chunk j's
    /// low nibbles are elements 4j..4j+3, its high nibbles 16+4j..); per token 8 vpmaddubsw summed in int16
    /// (|pair| ≤ 2·15·127; the 8 pairs of a block stay below 2^15), one vpmaddwd, one convert and two FMAs.
    /// Unsigned nibbles: Σ (q − 8)·x = Σ q·x − 8·Σ x, with d_x·Σ x the activations' S. Each token's operations are those
    /// of the one-token body in the same order (int16 sums wrap, so their order is free), so the results are equal
    /// bit for bit. Token t's R values at y + 16t. Inlined into its two entries, so the half h is a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_0Rows<TW, TB, TS, TF, TK>(byte* g, ActQ8* a, int h, float* y)
        where TW : IQ4_0Width<TB, TS, TF> where TB : unmanaged where TS : unmanaged where TF : unmanaged where TK : struct, ITokens
    {
        int nb = a->Cols / 32, k = TK.Count;
        int blockBytes = Interleave.BlockBytes(DType.Q4_0);
        byte* d = g + 2 * TW.Rows * h, q = g + 32 + 4 * TW.Rows * h;     // the rows' scales and their lanes of chunk 0
        var low4 = TW.Low4;
        TF acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        TF bias0 = default, bias1 = default, bias2 = default, bias3 = default;
        for (int b = 0; b < nb; b++, d += blockBytes, q += blockBytes)
        {
            if (h == 0) PrefetchAhead(d, 5);                               // the group's 288 bytes, once
            TS s0 = default, s1 = default, s2 = default, s3 = default;
            for (int j = 0; j < 4; j++)
            {
                var c = TW.Load(q + 64 * j);                               // the rows' 4 bytes of chunk j
                var lo = TW.And(c, low4);
                var hi = TW.And(TW.ShiftRight4(c), low4);
                int x = 32 * b + 4 * j;
                s0 = TW.Add(s0, TW.Nibbles(lo, hi, a[0].Q + x));
                if (k > 1) s1 = TW.Add(s1, TW.Nibbles(lo, hi, a[1].Q + x));
                if (k > 2) s2 = TW.Add(s2, TW.Nibbles(lo, hi, a[2].Q + x));
                if (k > 3) s3 = TW.Add(s3, TW.Nibbles(lo, hi, a[3].Q + x));
            }
            var dw = TW.Scales(d);
            TW.Scale(ref acc0, ref bias0, s0, dw, a, b);
            if (k > 1) TW.Scale(ref acc1, ref bias1, s1, dw, a + 1, b);
            if (k > 2) TW.Scale(ref acc2, ref bias2, s2, dw, a + 2, b);
            if (k > 3) TW.Scale(ref acc3, ref bias3, s3, dw, a + 3, b);
        }
        TW.Store(acc0, bias0, y);
        if (k > 1) TW.Store(acc1, bias1, y + 16);
        if (k > 2) TW.Store(acc2, bias2, y + 32);
        if (k > 3) TW.Store(acc3, bias3, y + 48);
    }

    /// <summary>
    /// The vector width of a Q4_0 group body: one register holds one 4-byte lane per row (<see cref="Rows"/> rows), as
    /// chunk bytes <typeparamref name="TB"/>, int16 pair sums <typeparamref name="TS"/> and float32 results <typeparamref name="TF"/>.
    /// </summary>
    private interface IQ4_0Width<TB, TS, TF>
    {
        static abstract int Rows { get; }
        static abstract TB Low4 { get; }
        static abstract TB Load(byte* p);
        static abstract TB And(TB a, TB b);
        /// <summary>Each byte's high nibble (shifted right by 4 in 16-bit lanes; the caller masks).</summary>
        static abstract TB ShiftRight4(TB c);
        /// <summary>One token's products of a chunk: low nibbles against x[0..4), high against x[16..20), as int16 pair sums.</summary>
        static abstract TS Nibbles(TB lo, TB hi, sbyte* x);
        static abstract TS Add(TS a, TS b);
        /// <summary>The rows' scales (halves) as floats, exact.</summary>
        static abstract TF Scales(byte* blk);
        /// <summary>One token's float step of a block: acc += d_w·d_x·Σ, bias += d_w·s_x (the −8 offset, applied at the end).</summary>
        static abstract void Scale(ref TF acc, ref TF bias, TS s, TF dw, ActQ8* a, int b);
        /// <summary>y = acc − 8·bias.</summary>
        static abstract void Store(TF acc, TF bias, float* y);
    }

    /// <summary>16 rows in a 512-bit register (AVX-512 BW).</summary>
    private readonly struct Q4_0Rows16 : IQ4_0Width<Vector512<byte>, Vector512<short>, Vector512<float>>
    {
        public static int Rows => 16;
        public static Vector512<byte> Low4 => Vector512.Create((byte)0x0F);
        public static Vector512<byte> Load(byte* p) => Vector512.Load(p);
        public static Vector512<byte> And(Vector512<byte> a, Vector512<byte> b) => a & b;
        public static Vector512<byte> ShiftRight4(Vector512<byte> c) => Avx512BW.ShiftRightLogical(c.AsUInt16(), 4).AsByte();
        public static Vector512<short> Nibbles(Vector512<byte> lo, Vector512<byte> hi, sbyte* x) =>
            Avx512BW.MultiplyAddAdjacent(lo, Broadcast512(x)) + Avx512BW.MultiplyAddAdjacent(hi, Broadcast512(x + 16));
        public static Vector512<short> Add(Vector512<short> a, Vector512<short> b) => a + b;
        public static Vector512<float> Scales(byte* blk) => Scales16(blk);
        public static void Scale(ref Vector512<float> acc, ref Vector512<float> bias, Vector512<short> s, Vector512<float> dw, ActQ8* a, int b)
        {
            var p = Avx512BW.MultiplyAddAdjacent(s, Vector512<short>.One);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), dw * a->D[b], acc);
            bias = Avx512F.FusedMultiplyAdd(dw, Vector512.Create(a->S[b]), bias);
        }
        public static void Store(Vector512<float> acc, Vector512<float> bias, float* y) => (acc - bias * 8).Store(y);
    }

    /// <summary>8 rows (half a group) in a 256-bit register (AVX2, FMA).</summary>
    private readonly struct Q4_0Rows8 : IQ4_0Width<Vector256<byte>, Vector256<short>, Vector256<float>>
    {
        public static int Rows => 8;
        public static Vector256<byte> Low4 => Vector256.Create((byte)0x0F);
        public static Vector256<byte> Load(byte* p) => Vector256.Load(p);
        public static Vector256<byte> And(Vector256<byte> a, Vector256<byte> b) => a & b;
        public static Vector256<byte> ShiftRight4(Vector256<byte> c) => Avx2.ShiftRightLogical(c.AsUInt16(), 4).AsByte();
        public static Vector256<short> Nibbles(Vector256<byte> lo, Vector256<byte> hi, sbyte* x) =>
            Avx2.MultiplyAddAdjacent(lo, Broadcast256(x)) + Avx2.MultiplyAddAdjacent(hi, Broadcast256(x + 16));
        public static Vector256<short> Add(Vector256<short> a, Vector256<short> b) => a + b;
        public static Vector256<float> Scales(byte* blk) => Scales8(blk);
        public static void Scale(ref Vector256<float> acc, ref Vector256<float> bias, Vector256<short> s, Vector256<float> d, ActQ8* a, int b)
        {
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s, Vector256<short>.One)), d * a->D[b], acc);
            bias = Fma.MultiplyAdd(d, Vector256.Create(a->S[b]), bias);
        }
        public static void Store(Vector256<float> acc, Vector256<float> bias, float* y) => (acc - bias * 8).Store(y);
    }

    /// <summary>16 rows' 6-bit sub-block scales (16 bytes) as int16 pairs: each row's scale in both halves of its int32 lane, for vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScalePairs16(byte* p)
    {
        var s = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        return (s | Vector512.ShiftLeft(s, 16)).AsInt16();
    }

    /// <summary>The int16 sums of two adjacent 16-element activation groups (ggml's bsums) of sub-blocks 2p and 2p+1, as one int16 pair.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BSumPair(short* bs, int p) =>
        (ushort)(short)(bs[4 * p] + bs[4 * p + 1]) | (int)((uint)(ushort)(short)(bs[4 * p + 2] + bs[4 * p + 3]) << 16);

    /// <summary>One token's products of one Q4_K chunk: low nibbles into <paramref name="lo"/>, high into <paramref name="hi"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Chunk(ref Vector512<short> lo, ref Vector512<short> hi, Vector512<byte> l, Vector512<byte> h, sbyte* x)
    {
        lo += Avx512BW.MultiplyAddAdjacent(l, Broadcast512(x));
        hi += Avx512BW.MultiplyAddAdjacent(h, Broadcast512(x + 32));
    }

    /// <summary>One token's mins term of a Q4_K super-block: Σ over the 4 sub-block pairs of the rows' min pairs · the activations' sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> K4Mins(Vector512<short> m0, Vector512<short> m1, Vector512<short> m2, Vector512<short> m3, short* bs)
    {
        var msum = Vector512<int>.Zero;
        msum += Avx512BW.MultiplyAddAdjacent(m0, Vector512.Create(BSumPair(bs, 0)).AsInt16());
        msum += Avx512BW.MultiplyAddAdjacent(m1, Vector512.Create(BSumPair(bs, 1)).AsInt16());
        msum += Avx512BW.MultiplyAddAdjacent(m2, Vector512.Create(BSumPair(bs, 2)).AsInt16());
        return msum + Avx512BW.MultiplyAddAdjacent(m3, Vector512.Create(BSumPair(bs, 3)).AsInt16());
    }

    /// <summary>One token's float step of a Q4_K super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Scale(ref Vector512<float> acc, ref Vector512<float> accMin, Vector512<int> isum, Vector512<int> msum,
        Vector512<float> d, Vector512<float> dmin, ActQ8* a, int b)
    {
        var dx = Vector512.Create(a->D[b]);
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), d * dx, acc);
        accMin = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(msum), dmin * dx, accMin);
    }

    public static void Q4_KAvx512(byte* g, ActQ8* a, float* y) => Q4_KAvx512<T1>(g, a, y);
    public static void Q4_KAvx512(byte* g, ActQ8* a, int n, float* y) => Tokens<Q4_KBody512>(g, a, n, y);

    private readonly struct Q4_KBody512 : IGroupBody
    {
        public static int MaxTokens => 4;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q4_KAvx512<TK>(g, a, y);
    }

    /// <summary>
    /// Q4_K, 512-bit, per super-block of 16 rows, 1-4 tokens (<typeparamref name="TK"/>) per pass: each chunk unpacked
    /// once; per token and pair of sub-blocks 8 chunks' vpmaddubsw of low and high nibbles summed in int16
    /// (8 pairs ≤ 8·2·15·127 &lt; 2^15), one vpmaddwd each against the rows' scales; the mins term is 4 vpmaddwd of the
    /// rows' min pairs against the activation sums. Two FMAs per super-block and token, as in the one-token body
    /// (integer sums are exact in any order, so every token's result equals the one-token body's bit for bit).
    /// </summary>
    [MethodImpl(BodyOptions)]
    private static void Q4_KAvx512<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens
    {
        int nb = a->Cols / 256, k = TK.Count;
        int blockBytes = Interleave.BlockBytes(DType.Q4_K);
        var low4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector512<float> min0 = default, min1 = default, min2 = default, min3 = default;
        // the tokens' activations as locals with one running offset: indexing a[t].Q by 256b + 64p + 4j cost 7
        // scalar instructions per 64-byte chunk (the offset recomputed and a[t].Q reloaded each time)
        sbyte* q0 = a[0].Q, q1 = k > 1 ? a[1].Q : null, q2 = k > 2 ? a[2].Q : null, q3 = k > 3 ? a[3].Q : null;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            PrefetchAhead(g, 5);                                        // the 320 header bytes; each chunk requests its own line
            Vector512<int> isum0 = default, isum1 = default, isum2 = default, isum3 = default;
            nint x = 256 * b;
            for (int p = 0; p < 4; p++, x += 32)
            {
                byte* c = g + Interleave.Q4_KQuants + 512 * p;
                Vector512<short> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
                for (int j = 0; j < 8; j++, c += 64, x += 4)
                {
                    PrefetchAhead(c, 1);
                    var v = Vector512.Load(c);
                    var l = v & low4;
                    var h = Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4;
                    K4Chunk(ref lo0, ref hi0, l, h, q0 + x);
                    if (k > 1) K4Chunk(ref lo1, ref hi1, l, h, q1 + x);
                    if (k > 2) K4Chunk(ref lo2, ref hi2, l, h, q2 + x);
                    if (k > 3) K4Chunk(ref lo3, ref hi3, l, h, q3 + x);
                }
                var sl = ScalePairs16(g + Interleave.Q4_KScales + 32 * p);
                var sh = ScalePairs16(g + Interleave.Q4_KScales + 32 * p + 16);
                isum0 += Avx512BW.MultiplyAddAdjacent(lo0, sl) + Avx512BW.MultiplyAddAdjacent(hi0, sh);
                if (k > 1) isum1 += Avx512BW.MultiplyAddAdjacent(lo1, sl) + Avx512BW.MultiplyAddAdjacent(hi1, sh);
                if (k > 2) isum2 += Avx512BW.MultiplyAddAdjacent(lo2, sl) + Avx512BW.MultiplyAddAdjacent(hi2, sh);
                if (k > 3) isum3 += Avx512BW.MultiplyAddAdjacent(lo3, sl) + Avx512BW.MultiplyAddAdjacent(hi3, sh);
            }
            byte* mins = g + Interleave.Q4_KMins;
            var m0 = Avx512BW.ConvertToVector512Int16(Vector256.Load(mins)); var m1 = Avx512BW.ConvertToVector512Int16(Vector256.Load(mins + 32));
            var m2 = Avx512BW.ConvertToVector512Int16(Vector256.Load(mins + 64)); var m3 = Avx512BW.ConvertToVector512Int16(Vector256.Load(mins + 96));
            var d = Scales16(g);
            var dmin = Scales16(g + Interleave.Q4_KDMin);
            K4Scale(ref acc0, ref min0, isum0, K4Mins(m0, m1, m2, m3, a[0].BSums + 16 * b), d, dmin, a, b);
            if (k > 1) K4Scale(ref acc1, ref min1, isum1, K4Mins(m0, m1, m2, m3, a[1].BSums + 16 * b), d, dmin, a + 1, b);
            if (k > 2) K4Scale(ref acc2, ref min2, isum2, K4Mins(m0, m1, m2, m3, a[2].BSums + 16 * b), d, dmin, a + 2, b);
            if (k > 3) K4Scale(ref acc3, ref min3, isum3, K4Mins(m0, m1, m2, m3, a[3].BSums + 16 * b), d, dmin, a + 3, b);
        }
        (acc0 - min0).Store(y);
        if (k > 1) (acc1 - min1).Store(y + 16);
        if (k > 2) (acc2 - min2).Store(y + 32);
        if (k > 3) (acc3 - min3).Store(y + 48);
    }

    /// <summary>8 rows' sub-block scales (8 bytes) as int16 pairs (see <see cref="ScalePairs16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ScalePairs8(byte* p)
    {
        var s = Avx2.ConvertToVector256Int32(p);
        return (s | Vector256.ShiftLeft(s, 16)).AsInt16();
    }

    /// <summary>One token's state of the 256-bit Q4_K body: per half of 8 rows, the int16 sums of the current sub-block
    /// pair, the super-block's int32 sums and the float accumulators.</summary>
    private struct K4Token8
    {
        public Vector256<short> Lo0, Hi0, Lo1, Hi1;
        public Vector256<int> Isum0, Isum1;
        public Vector256<float> Acc0, Acc1, Min0, Min1;
    }

    /// <summary>One token's products of one Q4_K chunk, both halves (unpacked nibbles l0/h0 of rows 0-7, l1/h1 of rows 8-15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Chunk8(ref K4Token8 s, Vector256<byte> l0, Vector256<byte> h0, Vector256<byte> l1, Vector256<byte> h1, sbyte* x)
    {
        var xl = Broadcast256(x);
        var xh = Broadcast256(x + 32);
        s.Lo0 += Avx2.MultiplyAddAdjacent(l0, xl);
        s.Hi0 += Avx2.MultiplyAddAdjacent(h0, xh);
        s.Lo1 += Avx2.MultiplyAddAdjacent(l1, xl);
        s.Hi1 += Avx2.MultiplyAddAdjacent(h1, xh);
    }

    /// <summary>The end of a sub-block pair: the int16 sums times the rows' scales into the super-block's int32 sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Pair8(ref K4Token8 s, byte* sc)
    {
        s.Isum0 += Avx2.MultiplyAddAdjacent(s.Lo0, ScalePairs8(sc)) + Avx2.MultiplyAddAdjacent(s.Hi0, ScalePairs8(sc + 16));
        s.Isum1 += Avx2.MultiplyAddAdjacent(s.Lo1, ScalePairs8(sc + 8)) + Avx2.MultiplyAddAdjacent(s.Hi1, ScalePairs8(sc + 24));
        s.Lo0 = s.Hi0 = s.Lo1 = s.Hi1 = default;
    }

    /// <summary>The end of a super-block: the mins term and the two halves' float steps; the int32 sums restart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Block8(ref K4Token8 s, byte* g, ActQ8* a, int b)
    {
        short* bs = a->BSums + 16 * b;
        Vector256<int> msum0 = default, msum1 = default;
        for (int p = 0; p < 4; p++)
        {
            var pair = Vector256.Create(BSumPair(bs, p)).AsInt16();
            byte* m = g + Interleave.Q4_KMins + 32 * p;
            msum0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(m), pair);
            msum1 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(m + 16), pair);
        }
        var dx = Vector256.Create(a->D[b]);
        s.Acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s.Isum0), Scales8(g) * dx, s.Acc0);
        s.Acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s.Isum1), Scales8(g + 16) * dx, s.Acc1);
        s.Min0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(msum0), Scales8(g + Interleave.Q4_KDMin) * dx, s.Min0);
        s.Min1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(msum1), Scales8(g + Interleave.Q4_KDMin + 16) * dx, s.Min1);
        s.Isum0 = s.Isum1 = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void K4Store8(in K4Token8 s, float* y)
    {
        (s.Acc0 - s.Min0).Store(y);
        (s.Acc1 - s.Min1).Store(y + 8);
    }

    public static void Q4_KAvx2(byte* g, ActQ8* a, float* y) => Q4_KAvx2<T1>(g, a, y);
    public static void Q4_KAvx2(byte* g, ActQ8* a, int n, float* y) => Tokens<Q4_KBody256>(g, a, n, y);

    private readonly struct Q4_KBody256 : IGroupBody
    {
        // 16 ymm registers without AVX-512: a token's state is 10 of them
        public static int MaxTokens => 2;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q4_KAvx2<TK>(g, a, y);
    }

    /// <summary>Q4_K, 256-bit, 1-2 tokens: <see cref="Q4_KAvx512{TK}"/> on the two halves of 8 rows, sharing each chunk's unpacked nibbles and each activation broadcast.</summary>
    [MethodImpl(BodyOptions)]
    private static void Q4_KAvx2<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens
    {
        int nb = a->Cols / 256, k = TK.Count;
        int blockBytes = Interleave.BlockBytes(DType.Q4_K);
        var low4 = Vector256.Create((byte)0x0F);
        K4Token8 s0 = default, s1 = default;
        sbyte* q0 = a[0].Q, q1 = k > 1 ? a[1].Q : null;                  // one running offset (see Q4_KAvx512)
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            PrefetchAhead(g, 5);                                           // the 320 header bytes; each chunk requests its own line
            nint x = 256 * b;
            for (int p = 0; p < 4; p++, x += 32)
            {
                byte* c = g + Interleave.Q4_KQuants + 512 * p;
                for (int j = 0; j < 8; j++, c += 64, x += 4)
                {
                    PrefetchAhead(c, 1);
                    var v0 = Vector256.Load(c);
                    var v1 = Vector256.Load(c + 32);
                    var l0 = v0 & low4; var h0 = Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & low4;
                    var l1 = v1 & low4; var h1 = Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & low4;
                    K4Chunk8(ref s0, l0, h0, l1, h1, q0 + x);
                    if (k > 1) K4Chunk8(ref s1, l0, h0, l1, h1, q1 + x);
                }
                K4Pair8(ref s0, g + Interleave.Q4_KScales + 32 * p);
                if (k > 1) K4Pair8(ref s1, g + Interleave.Q4_KScales + 32 * p);
            }
            K4Block8(ref s0, g, a, b);
            if (k > 1) K4Block8(ref s1, g, a + 1, b);
        }
        K4Store8(s0, y);
        if (k > 1) K4Store8(s1, y + 16);
    }

    /// <summary>
    /// The four 6-bit quarters of Q6_K chunk jj of half h for 8 rows (BlockQ6_K): low nibbles of ql[l] and ql[l+32]
    /// with qh bits 0-1 and 2-3, high nibbles with bits 4-5 and 6-7 (16-bit shifts; the bits shifted in from the
    /// neighbour byte are masked off).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<byte>, Vector256<byte>, Vector256<byte>, Vector256<byte>) Q6Quarters8(byte* ql0, byte* ql1, byte* qh)
    {
        var low4 = Vector256.Create((byte)0x0F);
        var bits45 = Vector256.Create((byte)0x30);
        var a = Vector256.Load(ql0); var b = Vector256.Load(ql1); var c = Vector256.Load(qh).AsUInt16();
        return ((a & low4) | (Vector256.ShiftLeft(c, 4).AsByte() & bits45),
                (b & low4) | (Vector256.ShiftLeft(c, 2).AsByte() & bits45),
                (Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low4) | (c.AsByte() & bits45),
                (Vector256.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & low4) | (Vector256.ShiftRightLogical(c, 2).AsByte() & bits45));
    }

    /// <summary>8 rows (<paramref name="half"/> 0 or 1 of the group) of one Q6_K super-block: Σ scale·q·x − 32·Σ scale·bsum, int32 per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6_KRows8(byte* g, int half, sbyte* x0, short* bs, Vector256<byte> even, Vector256<byte> odd)
    {
        Vector256<int> isum = default, bias = default;
        for (int h = 0; h < 2; h++)
        {
            sbyte* x = x0 + 128 * h;
            byte* ql = g + Interleave.Q6_KLow + 64 * 16 * h + 32 * half;
            byte* qh = g + Interleave.Q6_KHigh + 64 * 8 * h + 32 * half;
            sbyte* sp = (sbyte*)g + Interleave.Q6_KScales + 32 * 4 * h + 16 * half;
            var p0 = Avx2.ConvertToVector256Int16(sp); var p1 = Avx2.ConvertToVector256Int16(sp + 32);
            var p2 = Avx2.ConvertToVector256Int16(sp + 64); var p3 = Avx2.ConvertToVector256Int16(sp + 96);
            bias += Avx2.MultiplyAddAdjacent(p0, Vector256.Create(*(int*)(bs + 8 * h)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p1, Vector256.Create(*(int*)(bs + 8 * h + 2)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p2, Vector256.Create(*(int*)(bs + 8 * h + 4)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p3, Vector256.Create(*(int*)(bs + 8 * h + 6)).AsInt16());
            for (int jp = 0; jp < 4; jp++)
            {
                Vector256<short> s1 = default, s2 = default, s3 = default, s4 = default;
                for (int jj = 2 * jp; jj < 2 * jp + 2; jj++)
                {
                    PrefetchAhead(ql + 64 * jj, 1);
                    var (q1, q2, q3, q4) = Q6Quarters8(ql + 64 * jj, ql + 64 * (8 + jj), qh + 64 * jj);
                    s1 += Avx2.MultiplyAddAdjacent(q1, Broadcast256(x + 4 * jj));
                    s2 += Avx2.MultiplyAddAdjacent(q2, Broadcast256(x + 32 + 4 * jj));
                    s3 += Avx2.MultiplyAddAdjacent(q3, Broadcast256(x + 64 + 4 * jj));
                    s4 += Avx2.MultiplyAddAdjacent(q4, Broadcast256(x + 96 + 4 * jj));
                }
                var pick = jp < 2 ? even : odd;
                isum += Avx2.MultiplyAddAdjacent(s1, Avx2.Shuffle(p0.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s2, Avx2.Shuffle(p1.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s3, Avx2.Shuffle(p2.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s4, Avx2.Shuffle(p3.AsByte(), pick).AsInt16());
            }
        }
        return isum - Vector256.ShiftLeft(bias, 5);
    }

    /// <summary>
    /// Q6_K, 256-bit (AVX2 paths; AVX-512 has <see cref="Q6_KAvx512{TK}"/>), the two
    /// halves of 8 rows: unsigned 6-bit quants (the −32 is applied once:
    /// −32·Σ scale·bsum by vpmaddwd of the scale pairs against the activations' sums); two chunks' vpmaddubsw summed
    /// in int16 (2·2·63·127 &lt; 2^15), then one vpmaddwd against the rows' scale for those 16 weights.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_KAvx2(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 256;
        int blockBytes = Interleave.BlockBytes(DType.Q6_K);
        var even = Vector256.Create((byte)0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
        var odd = even + Vector256.Create((byte)2);
        Vector256<float> acc0 = default, acc1 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            var dx = Vector256.Create(a->D[b]);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q6_KRows8(g, 0, x, bs, even, odd)), Scales8(g) * dx, acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q6_KRows8(g, 1, x, bs, even, odd)), Scales8(g + 16) * dx, acc1);
        }
        acc0.Store(y);
        acc1.Store(y + 8);
    }

    /// <summary>The four 6-bit quarters of Q6_K chunk jj of one half for all 16 rows (<see cref="Q6Quarters8"/> at 512 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<byte>, Vector512<byte>, Vector512<byte>, Vector512<byte>) Q6Quarters16(byte* ql0, byte* ql1, byte* qh)
    {
        var low4 = Vector512.Create((byte)0x0F);
        var bits45 = Vector512.Create((byte)0x30);
        var a = Vector512.Load(ql0); var b = Vector512.Load(ql1); var c = Vector512.Load(qh).AsUInt16();
        return ((a & low4) | (Vector512.ShiftLeft(c, 4).AsByte() & bits45),
                (b & low4) | (Vector512.ShiftLeft(c, 2).AsByte() & bits45),
                (Vector512.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low4) | (c.AsByte() & bits45),
                (Vector512.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & low4) | (Vector512.ShiftRightLogical(c, 2).AsByte() & bits45));
    }

    /// <summary>One token's state in the 512-bit Q6_K body: the int16 sums of the current pair of chunks per quarter,
    /// and the super-block's int32 sums.</summary>
    private struct Q6Token16
    {
        public Vector512<short> S1, S2, S3, S4;
        public Vector512<int> Isum;
    }

    /// <summary>One token's products of the four quarters of a chunk (x: the token's activations of the half, chunk jj's 4 bytes at 4jj).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Chunk16(ref Q6Token16 s, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3, Vector512<byte> q4, sbyte* x)
    {
        s.S1 += Avx512BW.MultiplyAddAdjacent(q1, Broadcast512(x));
        s.S2 += Avx512BW.MultiplyAddAdjacent(q2, Broadcast512(x + 32));
        s.S3 += Avx512BW.MultiplyAddAdjacent(q3, Broadcast512(x + 64));
        s.S4 += Avx512BW.MultiplyAddAdjacent(q4, Broadcast512(x + 96));
    }

    /// <summary>A token's pair of chunks into its int32 sums: each quarter's int16 pair sums times the rows' scale for those 16 weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Pair16(ref Q6Token16 s, Vector512<short> c0, Vector512<short> c1, Vector512<short> c2, Vector512<short> c3)
    {
        s.Isum += Avx512BW.MultiplyAddAdjacent(s.S1, c0) + Avx512BW.MultiplyAddAdjacent(s.S2, c1)
                + Avx512BW.MultiplyAddAdjacent(s.S3, c2) + Avx512BW.MultiplyAddAdjacent(s.S4, c3);
        s.S1 = s.S2 = s.S3 = s.S4 = default;
    }

    /// <summary>−32·Σ scale·bsum of one half for one token (bs: the token's 16-element sums of the super-block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q6Bias16(Vector512<short> p0, Vector512<short> p1, Vector512<short> p2, Vector512<short> p3, short* bs) =>
        Avx512BW.MultiplyAddAdjacent(p0, Vector512.Create(*(int*)bs).AsInt16()) + Avx512BW.MultiplyAddAdjacent(p1, Vector512.Create(*(int*)(bs + 2)).AsInt16())
        + Avx512BW.MultiplyAddAdjacent(p2, Vector512.Create(*(int*)(bs + 4)).AsInt16()) + Avx512BW.MultiplyAddAdjacent(p3, Vector512.Create(*(int*)(bs + 6)).AsInt16());

    public static void Q6_KAvx512(byte* g, ActQ8* a, float* y) => Q6_KAvx512<T1>(g, a, y);
    public static void Q6_KAvx512(byte* g, ActQ8* a, int n, float* y) => Tokens<Q6_KBody512>(g, a, n, y);

    /// <summary>Two tokens per pass: each token keeps 5 registers of sums, and with the 4 quarters and 4 scale vectors
    /// shared, three or four tokens would not fit in the 32 registers.</summary>
    private readonly struct Q6_KBody512 : IGroupBody
    {
        public static int MaxTokens => 2;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q6_KAvx512<TK>(g, a, y);
    }

    /// <summary>
    /// Q6_K, 512-bit, the 16 rows in one pass, 1-2 tokens (<typeparamref name="TK"/>): the 256-bit body's operations
    /// (<see cref="Q6_KAvx2"/>) on both halves of 8 rows at once, each 64-byte chunk unpacked once for every token;
    /// the scale pairs of 16 rows are one 32-byte load, widened to int16 (vpshufb picks the even or odd scale in every
    /// 128-bit lane alike). Integer sums are exact in any order, so each token's result equals the one-token body's.
    /// </summary>
    [MethodImpl(BodyOptions)]
    private static void Q6_KAvx512<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens
    {
        int nb = a->Cols / 256, k = TK.Count;
        int blockBytes = Interleave.BlockBytes(DType.Q6_K);
        var even = Vector512.Create((byte)0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13,
                                    0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
        var odd = even + Vector512.Create((byte)2);
        Vector512<float> acc0 = default, acc1 = default;
        sbyte* q0 = a[0].Q, q1 = k > 1 ? a[1].Q : null;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            Q6Token16 t0 = default, t1 = default;
            Vector512<int> bias0 = default, bias1 = default;
            for (int h = 0; h < 2; h++)
            {
                nint x = 256 * b + 128 * h;
                byte* ql = g + Interleave.Q6_KLow + 64 * 16 * h;
                byte* qh = g + Interleave.Q6_KHigh + 64 * 8 * h;
                sbyte* sp = (sbyte*)g + Interleave.Q6_KScales + 32 * 4 * h;
                // scale pair k = 4h + i of row r in int32 lane r: (scales[2k], scales[2k+1]) as int16
                var p0 = Avx512BW.ConvertToVector512Int16(Vector256.Load(sp)); var p1 = Avx512BW.ConvertToVector512Int16(Vector256.Load(sp + 32));
                var p2 = Avx512BW.ConvertToVector512Int16(Vector256.Load(sp + 64)); var p3 = Avx512BW.ConvertToVector512Int16(Vector256.Load(sp + 96));
                bias0 += Q6Bias16(p0, p1, p2, p3, a[0].BSums + 16 * b + 8 * h);
                if (k > 1) bias1 += Q6Bias16(p0, p1, p2, p3, a[1].BSums + 16 * b + 8 * h);
                for (int jp = 0; jp < 4; jp++)
                {
                    // two chunks' vpmaddubsw per quarter stay in int16: 2·2·63·127 < 2^15
                    for (int jj = 2 * jp; jj < 2 * jp + 2; jj++)
                    {
                        // the super-block 2 KB on, requested in order, 256 bytes per chunk (16 × 256 ≥ its 3,360): a line
                        // 2 KB past each line read, as the other bodies do, requested the three streams of ql, ql + 32 and qh
                        // out of order, and the output head (151936 rows, from memory) ran at 0.6x of the row body
                        PrefetchAhead(g + 256 * (8 * h + jj), 4);
                        var (c1, c2, c3, c4) = Q6Quarters16(ql + 64 * jj, ql + 64 * (8 + jj), qh + 64 * jj);
                        Q6Chunk16(ref t0, c1, c2, c3, c4, q0 + x + 4 * jj);
                        if (k > 1) Q6Chunk16(ref t1, c1, c2, c3, c4, q1 + x + 4 * jj);
                    }
                    var pick = jp < 2 ? even : odd;                      // elements 4jj.. < 16 of each quarter take scales[2k]
                    var s0 = Avx512BW.Shuffle(p0.AsByte(), pick).AsInt16(); var s1 = Avx512BW.Shuffle(p1.AsByte(), pick).AsInt16();
                    var s2 = Avx512BW.Shuffle(p2.AsByte(), pick).AsInt16(); var s3 = Avx512BW.Shuffle(p3.AsByte(), pick).AsInt16();
                    Q6Pair16(ref t0, s0, s1, s2, s3);
                    if (k > 1) Q6Pair16(ref t1, s0, s1, s2, s3);
                }
            }
            var d = Scales16(g);
            acc0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(t0.Isum - Vector512.ShiftLeft(bias0, 5)), d * Vector512.Create(a[0].D[b]), acc0);
            if (k > 1) acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(t1.Isum - Vector512.ShiftLeft(bias1, 5)), d * Vector512.Create(a[1].D[b]), acc1);
        }
        acc0.Store(y);
        if (k > 1) acc1.Store(y + 16);
    }

    /// <summary>One token's products of one Q8_0 chunk, both halves: signed weights × signed activations by the sign trick, |w| (unsigned, formed once for all tokens) × (x with w's sign).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8Chunk<TDot>(ref Vector256<int> p0, ref Vector256<int> p1, Vector256<sbyte> w0, Vector256<sbyte> w1,
        Vector256<byte> abs0, Vector256<byte> abs1, sbyte* x) where TDot : IU8S8Dot
    {
        var xb = Broadcast256(x);
        p0 += TDot.Dot(abs0, Avx2.Sign(xb, w0));
        p1 += TDot.Dot(abs1, Avx2.Sign(xb, w1));
    }

    /// <summary>One token's float step of a Q8_0 block (both halves).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8Scale(ref Vector256<float> acc0, ref Vector256<float> acc1, Vector256<int> p0, Vector256<int> p1,
        Vector256<float> d0, Vector256<float> d1, ActQ8* a, int b)
    {
        var dx = Vector256.Create(a->D[b]);
        acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), d0 * dx, acc0);
        acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), d1 * dx, acc1);
    }

    public static void Q8_0<TDot>(byte* g, ActQ8* a, float* y) where TDot : IU8S8Dot => Q8_0<TDot, T1>(g, a, y);
    public static void Q8_0<TDot>(byte* g, ActQ8* a, int n, float* y) where TDot : IU8S8Dot => Tokens<Q8_0Body<TDot>>(g, a, n, y);

    private readonly struct Q8_0Body<TDot> : IGroupBody where TDot : IU8S8Dot
    {
        // a token's state is 4 registers: 4 tokens where the JIT has 32 (AVX-512 machines), 2 with 16
        public static int MaxTokens => Avx512F.IsSupported ? 4 : 2;
        public static void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens => Q8_0<TDot, TK>(g, a, y);
    }

    /// <summary>
    /// Q8_0, 256-bit (on AVX-512 machines too: with AVX-VNNI these are the "two 256-bit vpdpbusd" of a 512-bit step),
    /// 1-4 tokens: 8 chunks per block, each two halves of 8 rows whose |w| is formed once and meets every token's
    /// broadcast; int32 lanes need no int16 stage.
    /// </summary>
    [MethodImpl(BodyOptions)]
    private static void Q8_0<TDot, TK>(byte* g, ActQ8* a, float* y) where TDot : IU8S8Dot where TK : struct, ITokens
    {
        int nb = a->Cols / 32, k = TK.Count;
        int blockBytes = Interleave.BlockBytes(DType.Q8_0);
        Vector256<float> acc00 = default, acc01 = default, acc10 = default, acc11 = default, acc20 = default, acc21 = default, acc30 = default, acc31 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            PrefetchAhead(g, 9);                                        // 544 bytes
            Vector256<int> p00 = default, p01 = default, p10 = default, p11 = default, p20 = default, p21 = default, p30 = default, p31 = default;
            for (int j = 0; j < 8; j++)
            {
                var w0 = Vector256.Load((sbyte*)g + 32 + 64 * j);
                var w1 = Vector256.Load((sbyte*)g + 64 + 64 * j);
                var abs0 = Avx2.Abs(w0); var abs1 = Avx2.Abs(w1);
                int x = 32 * b + 4 * j;
                Q8Chunk<TDot>(ref p00, ref p01, w0, w1, abs0, abs1, a[0].Q + x);
                if (k > 1) Q8Chunk<TDot>(ref p10, ref p11, w0, w1, abs0, abs1, a[1].Q + x);
                if (k > 2) Q8Chunk<TDot>(ref p20, ref p21, w0, w1, abs0, abs1, a[2].Q + x);
                if (k > 3) Q8Chunk<TDot>(ref p30, ref p31, w0, w1, abs0, abs1, a[3].Q + x);
            }
            var d0 = Scales8(g); var d1 = Scales8(g + 16);
            Q8Scale(ref acc00, ref acc01, p00, p01, d0, d1, a, b);
            if (k > 1) Q8Scale(ref acc10, ref acc11, p10, p11, d0, d1, a + 1, b);
            if (k > 2) Q8Scale(ref acc20, ref acc21, p20, p21, d0, d1, a + 2, b);
            if (k > 3) Q8Scale(ref acc30, ref acc31, p30, p31, d0, d1, a + 3, b);
        }
        acc00.Store(y); acc01.Store(y + 8);
        if (k > 1) { acc10.Store(y + 16); acc11.Store(y + 24); }
        if (k > 2) { acc20.Store(y + 32); acc21.Store(y + 40); }
        if (k > 3) { acc30.Store(y + 48); acc31.Store(y + 56); }
    }

    /// <summary>Tokens per pass of a multi-token group body (1-4): a JIT-time constant, so the unused tokens' code is dropped.</summary>
    internal interface ITokens { static abstract int Count { get; } }
    internal readonly struct T1 : ITokens { public static int Count => 1; }
    internal readonly struct T2 : ITokens { public static int Count => 2; }
    internal readonly struct T3 : ITokens { public static int Count => 3; }
    internal readonly struct T4 : ITokens { public static int Count => 4; }

    /// <summary>A group body over 1..<see cref="MaxTokens"/> tokens per pass (token t's 16 values at y + 16t).</summary>
    private interface IGroupBody
    {
        static abstract int MaxTokens { get; }
        static abstract void Run<TK>(byte* g, ActQ8* a, float* y) where TK : struct, ITokens;
    }

    /// <summary>
    /// y[t, 0..16) for tokens t &lt; n: passes of up to <c>MaxTokens</c> tokens over the group (each weight byte
    /// unpacked once per pass and multiplied with every token of it), the tokens split evenly between passes.
    /// </summary>
    private static void Tokens<TB>(byte* g, ActQ8* a, int n, float* y) where TB : IGroupBody
    {
        for (int t = 0; t < n;)
        {
            int passes = (n - t + TB.MaxTokens - 1) / TB.MaxTokens, k = (n - t + passes - 1) / passes;
            switch (k)
            {
                case 1: TB.Run<T1>(g, a + t, y + 16 * t); break;
                case 2: TB.Run<T2>(g, a + t, y + 16 * t); break;
                case 3: TB.Run<T3>(g, a + t, y + 16 * t); break;
                default: TB.Run<T4>(g, a + t, y + 16 * t); break;
            }
            t += k;
        }
    }
}
