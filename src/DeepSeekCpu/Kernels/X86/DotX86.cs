using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>u8 × s8 dot products of 32 bytes into 8 int32 lanes, lane i = Σ of bytes 4i..4i+3 (both flavours agree).</summary>
internal interface IU8S8Dot
{
    static abstract Vector256<int> Dot(Vector256<byte> u, Vector256<sbyte> s);
}

/// <summary>AVX-VNNI vpdpbusd.</summary>
internal readonly struct VnniDot : IU8S8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, s);
}

/// <summary>AVX2 vpmaddubsw (pairs to saturating int16; our operands never saturate) then vpmaddwd with ones.</summary>
internal readonly struct MaddDot : IU8S8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<byte> u, Vector256<sbyte> s) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
}

/// <summary>
/// x86 dot products of one quantized weight row with quantized activations (see DotReference for the maths).
/// The 256-bit bodies are generic over the int8 dot flavour (AVX2 or AVX-VNNI); the AVX-512 bodies take two
/// 32-element blocks per 512-bit register and need only AVX-512 F/BW/VL (+ VBMI for Q4_0Vbmi): their int8 products
/// are vpmaddubsw/vpmaddwd pairs, and their one-block tails use the AVX2 flavour, so no AVX-VNNI is required.
/// </summary>
internal static unsafe partial class DotX86
{
    // ---------- helpers ----------

    /// <summary>
    /// How far ahead of the bytes being read the bodies prefetch weights (software prefetch, into L1). The hardware
    /// streamers alone left a row's compute and its memory reads largely serial (decode ran near the harmonic mean of
    /// the body's L2 speed and the read bandwidth); with the next 2 KB requested while a block is computed, Q4_0 and
    /// Q4_K decoding ran 1.2-1.9x faster on the 2-core Xeon in alternating runs on a busy host (2048 beat 1024; 4096
    /// was no better). Prefetches past the matrix end are harmless (a prefetch never faults).
    /// </summary>
    private const int PrefetchDistance = 2048;

    /// <summary>Prefetches the <paramref name="lines"/> cache lines that lie <see cref="PrefetchDistance"/> past <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(void* p, int lines)
    {
        byte* q = (byte*)p + PrefetchDistance;
        Sse.Prefetch0(q);
        if (lines > 1) Sse.Prefetch0(q + 64);
        if (lines > 2) Sse.Prefetch0(q + 128);
        if (lines > 3) Sse.Prefetch0(q + 192);
    }

    /// <summary>Signed × signed bytes via the sign trick: |w| (unsigned) × (x with w's sign).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> DotS8S8<TDot>(Vector256<sbyte> w, Vector256<sbyte> x) where TDot : IU8S8Dot =>
        TDot.Dot(Avx2.Abs(w), Avx2.Sign(x, w));

    /// <summary>32 nibbles of 16 bytes as 32 bytes: low nibbles first, then high nibbles (the Q4_0 element order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles32(byte* p)
    {
        var v = Vector128.Load(p);
        return Vector256.Create(v, Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)0x0F);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HSum(Vector256<float> v) => Vector256.Sum(v);

    // ---------- 256-bit bodies ----------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8_0<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ8_0*)w;
        int nb = a->Cols / 32;
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < nb; b++, blk++)
        {
            PrefetchAhead(blk, 1);
            var p = DotS8S8<TDot>(Vector256.Load(blk->Qs), Vector256.Load(a->Q + 32 * b));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(HalfBits.ToFloat(blk->D) * a->D[b]), acc);
        }
        return HSum(acc);
    }

    // Q4_0 with unsigned nibbles: Σ (q − 8)·y = Σ q·y − 8·Σ y; dy·Σ qy is the activation's S.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q4_0<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ4_0*)w;
        int nb = a->Cols / 32, b = 0;
        // two blocks per turn into two accumulators: one FMA chain (4-cycle latency per block) was the limit
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        float bias0 = 0, bias1 = 0;
        for (; b + 2 <= nb; b += 2, blk += 2)
        {
            PrefetchAhead(blk, 1);
            float d0 = HalfBits.ToFloat(blk[0].D), d1 = HalfBits.ToFloat(blk[1].D);
            var p0 = TDot.Dot(Nibbles32(blk[0].Qs), Vector256.Load(a->Q + 32 * b));
            var p1 = TDot.Dot(Nibbles32(blk[1].Qs), Vector256.Load(a->Q + 32 * b + 32));
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Vector256.Create(d0 * a->D[b]), acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), Vector256.Create(d1 * a->D[b + 1]), acc1);
            bias0 += d0 * a->S[b];
            bias1 += d1 * a->S[b + 1];
        }
        if (b < nb)
        {
            float d = HalfBits.ToFloat(blk->D);
            var p = TDot.Dot(Nibbles32(blk->Qs), Vector256.Load(a->Q + 32 * b));
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(d * a->D[b]), acc0);
            bias0 += d * a->S[b];
        }
        return HSum(acc0 + acc1) - 8 * (bias0 + bias1);
    }

    // Q4_K and Q5_K: one body per width, generic over the layout (the entries the GEMV tables name)
    public static float Q4_K(byte* w, ActQ8* a) => K4<Q4_KLayout>(w, a);
    public static float Q5_K(byte* w, ActQ8* a) => K4<Q5_KLayout>(w, a);
    public static float Q4_KAvx512(byte* w, ActQ8* a) => K4Avx512<Q4_KLayout>(w, a);
    public static float Q5_KAvx512(byte* w, ActQ8* a) => K4Avx512<Q5_KLayout>(w, a);

    /// <summary>
    /// Q4_K and Q5_K (<see cref="IK4Layout"/>): per super-block the 8 sub-block products are formed as vpmaddubsw
    /// pairs (int16) and summed by vpmaddwd against the sub-block's 6-bit scale (so the scale costs nothing), converted
    /// once; the mins term uses the activations' block sums. Q5_K's fifth bits (bit 2g of qh for sub-block 2g, 2g+1
    /// for 2g+1) are moved to bit 4. |pair| ≤ 2·31·127 fits int16. The same body serves both 256-bit flavours.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float K4<TK>(byte* w, ActQ8* a) where TK : IK4Layout
    {
        int nb = a->Cols / 256;
        var acc = Vector256<float>.Zero;
        float minTerm = 0;
        for (int b = 0; b < nb; b++, w += TK.BlockBytes)
        {
            PrefetchAhead(w, 3);                          // 144 / 176-byte super-block
            var blk = (BlockQ4_K*)w;                      // D, DMin, Scales: the same offsets in Q5_K
            KQuant.UnpackScalesMins(blk->Scales, out ulong scales8, out ulong mins8);
            byte* scales = (byte*)&scales8, qs = w + TK.QsOffset;
            sbyte* x = a->Q + 256 * b;
            int summ = MinsDotBlockSums(Vector128.CreateScalar(mins8).AsByte(), a->BSums + 16 * b);
            var qh = TK.HasQh ? Vector256.Load(((BlockQ5_K*)w)->Qh).AsUInt16() : default;
            // the four groups written out: as a loop the JIT did not unroll it (Q4_K ran 1.3x slower)
            var sumi = K4Group<TK>(qs, qh, x, scales, 0) + K4Group<TK>(qs, qh, x, scales, 1)
                     + K4Group<TK>(qs, qh, x, scales, 2) + K4Group<TK>(qs, qh, x, scales, 3);
            float dy = a->D[b];
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(HalfBits.ToFloat(blk->D) * dy), acc);
            minTerm += HalfBits.ToFloat(blk->DMin) * dy * summ;
        }
        return HSum(acc) - minTerm;
    }

    /// <summary>Group g of a Q4_K/Q5_K super-block: sub-blocks 2g and 2g+1 (low and high nibbles of qs[32g..32g+31],
    /// with Q5_K's fifth bits 2g and 2g+1 of qh moved to bit 4) against their activations, times their scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> K4Group<TK>(byte* qs, Vector256<ushort> qh, sbyte* x, byte* scales, int g) where TK : IK4Layout
    {
        var mask = Vector256.Create((byte)0x0F);
        var q = Vector256.Load(qs + 32 * g);
        var lo = q & mask;
        var hi = Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & mask;
        if (TK.HasQh)
        {
            var bit4 = Vector256.Create((byte)0x10);
            lo |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, 2 * g), 4).AsByte() & bit4;
            hi |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, 2 * g + 1), 4).AsByte() & bit4;
        }
        var p1 = Avx2.MultiplyAddAdjacent(lo, Vector256.Load(x + 64 * g));
        var p2 = Avx2.MultiplyAddAdjacent(hi, Vector256.Load(x + 64 * g + 32));
        return Avx2.MultiplyAddAdjacent(p1, Vector256.Create((short)scales[2 * g]))
             + Avx2.MultiplyAddAdjacent(p2, Vector256.Create((short)scales[2 * g + 1]));
    }

    /// <summary>Σ_j mins[j]·(bsums[2j] + bsums[2j+1]) with one vpmaddwd: mins widened and duplicated pairwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int MinsDotBlockSums(Vector128<byte> mins8, short* bsums)
    {
        var m = Sse41.ConvertToVector128Int16(mins8);                 // 8 × int16
        var dup = Vector256.Create(Sse2.UnpackLow(m, m), Sse2.UnpackHigh(m, m));
        return Vector256.Sum(Avx2.MultiplyAddAdjacent(Vector256.Load(bsums), dup));
    }

    /// <summary>
    /// Q6_K: unsigned 6-bit q (0..63) against the activations, then Σ (q − 32)·y = Σ q·y − 32·Σ y with Σ y from
    /// the block sums; each 16-element group carries its own int8 scale (the low and high 128-bit halves of 32 bytes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q6_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ6_K*)w;
        int nb = a->Cols / 256;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x03);
        for (int b = 0; b < nb; b++, blk++)
        {
            PrefetchAhead(blk, 4);                        // 210-byte super-block
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            sbyte* sc = blk->Scales;
            int bias = 0;
            for (int j = 0; j < 16; j++) bias += sc[j] * bs[j];
            var sumi = Vector256<int>.Zero;
            for (int half = 0; half < 2; half++)
            {
                byte* ql = blk->Ql + 64 * half;
                var qh = Vector256.Load(blk->Qh + 32 * half);
                var l0 = Vector256.Load(ql);
                var l1 = Vector256.Load(ql + 32);
                var q1 = (l0 & m4) | Vector256.ShiftLeft((qh & m2).AsUInt16(), 4).AsByte();
                var q2 = (l1 & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(qh.AsUInt16(), 2).AsByte() & m2).AsUInt16(), 4).AsByte();
                var q3 = (Vector256.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(qh.AsUInt16(), 4).AsByte() & m2).AsUInt16(), 4).AsByte();
                var q4 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(qh.AsUInt16(), 6).AsByte() & m2).AsUInt16(), 4).AsByte();
                sbyte* xh = x + 128 * half;
                sbyte* s = sc + 8 * half;
                // vpmaddubsw pairs (|pair| ≤ 2·63·127 fits int16), then vpmaddwd against each 16-group's scale.
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q1, Vector256.Load(xh)), Pair16(s[0], s[1]))
                      + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q2, Vector256.Load(xh + 32)), Pair16(s[2], s[3]))
                      + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q3, Vector256.Load(xh + 64)), Pair16(s[4], s[5]))
                      + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q4, Vector256.Load(xh + 96)), Pair16(s[6], s[7]));
            }
            var total = Avx.ConvertToVector256Single(sumi - Vector256.CreateScalar(32 * bias));
            acc = Fma.MultiplyAdd(total, Vector256.Create(HalfBits.ToFloat(blk->D) * a->D[b]), acc);
        }
        return HSum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Pair16(int lo, int hi) => Vector256.Create(Vector128.Create((short)lo), Vector128.Create((short)hi));

    // ---------- 512-bit bodies (two 32-element blocks per register) ----------

    /// <summary>Signed × signed bytes: |w| × (x negated where w &lt; 0), then pairs → int16 → int32 (4 bytes per lane).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> DotS8S8x64(Vector512<sbyte> w, Vector512<sbyte> x)
    {
        var negative = Vector512.LessThan(w, Vector512<sbyte>.Zero);
        var signedX = Vector512.ConditionalSelect(negative, Vector512<sbyte>.Zero - x, x);
        return DotU8S8x64(Avx512BW.Abs(w), signedX);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> DotU8S8x64(Vector512<byte> u, Vector512<sbyte> s) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), Vector512<short>.One);


    /// <summary>
    /// 16 block scales at once: gathers the first dword of 16 consecutive blocks (stride <paramref name="stride"/>
    /// bytes; its low half is the block's ggml_half d) and converts half → float with the bit trick of HalfBits.
    /// One gather replaces 16 scalar conversions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> GatherHalfScales(byte* firstBlock, Vector256<int> byteOffsets8, int stride)
    {
        // .NET 10 has no 512-bit gather: two 256-bit vpgatherdd.
        var lo = Avx2.GatherVector256((int*)firstBlock, byteOffsets8, 1);
        var hi = Avx2.GatherVector256((int*)(firstBlock + 8 * stride), byteOffsets8, 1);
        return HalfToSingle(Join(lo, hi).AsUInt32());
    }

    /// <summary>
    /// The half in the low 16 bits of each lane as a float, exactly, by the integer rebias of <see cref="HalfBits.ToFloat"/>:
    /// no float operation sees a subnormal operand (each would cost a microcode assist on x86 without flush-to-zero).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        var mag = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        var sub = Vector512.LessThan(mag, Vector512.Create(0x0080_0000u));          // exponent 0: zero or subnormal
        var f = (mag + Vector512.Create(0x3800_0000u) + (sub & Vector512.Create(0x0080_0000u))).AsSingle()
              - (sub & Vector512.Create(0x3880_0000u)).AsSingle();
        return (f.AsUInt32() | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    /// <summary>[s[2p] ×8 | s[2p+1] ×8]: the combined scales of block pair p, spread over the lanes its products fill.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PairScales(Vector512<float> scales16, Vector512<int> pairIndex) => Avx512F.PermuteVar16x32(scales16, pairIndex);

    /// <summary>Lanes 0-7 get the first block's scale, lanes 8-15 the second's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TwoScales(float s0, float s1) => Vector512.Create(s0).WithUpper(Vector256.Create(s1));

    /// <summary>Two 32-byte runs as one register without a dependency on a stale register (ToVector512Unsafe + insert).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Join<T>(Vector256<T> lo, Vector256<T> hi) => lo.ToVector512Unsafe().WithUpper(hi);

    /// <summary>
    /// Q8_0, 512-bit: two blocks per register; the weight scales of 16 blocks are gathered and multiplied by the
    /// activation scales in one go, then spread to block pairs with vpermps.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8_0Avx512(byte* w, ActQ8* a)
    {
        var blk = (BlockQ8_0*)w;
        int nb = a->Cols / 32, b = 0;
        sbyte* xq = a->Q;
        float* xd = a->D;
        Vector512<float> acc = default, acc1 = default;
        var offsets = Vector256<int>.Indices * sizeof(BlockQ8_0);
        var pair0 = Vector512.Create(0).WithUpper(Vector256.Create(1));
        var two = Vector512.Create(2);
        for (; b + 16 <= nb; b += 16)
        {
            var scales = GatherHalfScales((byte*)(blk + b), offsets, sizeof(BlockQ8_0)) * Vector512.Load(xd + b);
            var pair = pair0;
            sbyte* qs = (sbyte*)(blk + b) + 2;
            sbyte* xp = xq + 32 * b;
            for (int p = 0; p < 16; p += 4, pair += two + two, qs += 4 * sizeof(BlockQ8_0), xp += 128)
            {
                PrefetchAhead(qs, 3);                     // 4 blocks, 136 bytes
                var w0 = Join(Vector256.Load(qs), Vector256.Load(qs + sizeof(BlockQ8_0)));
                var w1 = Join(Vector256.Load(qs + 2 * sizeof(BlockQ8_0)), Vector256.Load(qs + 3 * sizeof(BlockQ8_0)));
                var prod0 = DotS8S8x64(w0, Vector512.Load(xp));
                var prod1 = DotS8S8x64(w1, Vector512.Load(xp + 64));
                acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod0), PairScales(scales, pair), acc);
                acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod1), PairScales(scales, pair + two), acc1);
            }
        }
        for (; b + 2 <= nb; b += 2)
        {
            var wq = Join(Vector256.Load(blk[b].Qs), Vector256.Load(blk[b + 1].Qs));
            var prod = DotS8S8x64(wq, Vector512.Load(xq + 32 * b));
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod), TwoScales(HalfBits.ToFloat(blk[b].D) * xd[b], HalfBits.ToFloat(blk[b + 1].D) * xd[b + 1]), acc);
        }
        float sum = Vector512.Sum(acc + acc1);
        for (; b < nb; b++)
        {
            var prod = DotS8S8<MaddDot>(Vector256.Load(blk[b].Qs), Vector256.Load(xq + 32 * b));
            sum += Vector256.Sum(prod) * (HalfBits.ToFloat(blk[b].D) * xd[b]);
        }
        return sum;
    }

    /// <summary>
    /// Each 128-bit lane gets one block's 16 bytes (two broadcast loads and one vshufi32x4 give [b, b, b+1, b+1]);
    /// lanes 1 and 3 are shifted right by 4 (per 16-bit element), so after masking the register holds
    /// [lo(b), hi(b), lo(b+1), hi(b+1)]: the activations' order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> NibblePair(byte* qs0, byte* qs1, Vector512<ushort> shifts)
    {
        var b0 = Avx512F.BroadcastVector128ToVector512((uint*)qs0);
        var b1 = Avx512F.BroadcastVector128ToVector512((uint*)qs1);
        var both = Avx512F.Shuffle4x128(b0, b1, 0b01_00_01_00).AsUInt16();
        return Avx512BW.ShiftRightLogicalVariable(both, shifts).AsByte() & Vector512.Create((byte)0x0F);
    }

    /// <summary>
    /// Q4_0, 512-bit, unsigned nibbles: Σ (q − 8)·y = Σ q·y − 8·Σ y, where dy·Σ qy is the activations' S. Scales of 16
    /// blocks are gathered at once; the −8 term is one FMA per 16 blocks.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q4_0Avx512(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_0*)w;
        int nb = a->Cols / 32, b = 0;
        sbyte* xq = a->Q;
        float* xd = a->D, xs = a->S;
        Vector512<float> acc = default, acc1 = default;
        var biasAcc = Vector512<float>.Zero;
        var shifts = Join(Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)), Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)));
        var offsets = Vector256<int>.Indices * sizeof(BlockQ4_0);
        var pair0 = Vector512.Create(0).WithUpper(Vector256.Create(1));
        var two = Vector512.Create(2);
        for (; b + 16 <= nb; b += 16)
        {
            var dw = GatherHalfScales((byte*)(blk + b), offsets, sizeof(BlockQ4_0));
            var scales = dw * Vector512.Load(xd + b);
            biasAcc = Avx512F.FusedMultiplyAdd(dw, Vector512.Load(xs + b), biasAcc);
            var pair = pair0;
            byte* qs = (byte*)(blk + b) + 2;              // qs of block b; block b+1's is 18 bytes on
            sbyte* xp = xq + 32 * b;
            // Two block pairs per step into two accumulators: a single FMA chain would be latency-bound.
            for (int p = 0; p < 16; p += 4, pair += two + two, qs += 4 * sizeof(BlockQ4_0), xp += 128)
            {
                PrefetchAhead(qs, 2);                     // 4 blocks, 72 bytes
                var q0 = NibblePair(qs, qs + sizeof(BlockQ4_0), shifts);
                var q1 = NibblePair(qs + 2 * sizeof(BlockQ4_0), qs + 3 * sizeof(BlockQ4_0), shifts);
                var prod0 = DotU8S8x64(q0, Vector512.Load(xp));
                var prod1 = DotU8S8x64(q1, Vector512.Load(xp + 64));
                acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod0), PairScales(scales, pair), acc);
                acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod1), PairScales(scales, pair + two), acc1);
            }
        }
        float bias = Vector512.Sum(biasAcc);
        for (; b + 2 <= nb; b += 2)
        {
            var q = NibblePair(blk[b].Qs, blk[b + 1].Qs, shifts);
            var prod = DotU8S8x64(q, Vector512.Load(xq + 32 * b));
            float d0 = HalfBits.ToFloat(blk[b].D), d1 = HalfBits.ToFloat(blk[b + 1].D);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod), TwoScales(d0 * xd[b], d1 * xd[b + 1]), acc);
            bias += d0 * xs[b] + d1 * xs[b + 1];
        }
        return Q4_0Tail(blk, b, a, Vector512.Sum(acc + acc1), bias);
    }

    /// <summary>
    /// The 512-bit Q4_0 bodies' tail: blocks [b, nb) one at a time at 256 bits, added to the body's Σ d·dy·Σq·qy
    /// (<paramref name="sum"/>) and Σ d·(dy·Σqy) (<paramref name="bias"/>); returns sum − 8·bias.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Q4_0Tail(BlockQ4_0* blk, int b, ActQ8* a, float sum, float bias)
    {
        for (int nb = a->Cols / 32; b < nb; b++)
        {
            float d = HalfBits.ToFloat(blk[b].D);
            var prod = MaddDot.Dot(Nibbles32(blk[b].Qs), Vector256.Load(a->Q + 32 * b));
            sum += Vector256.Sum(prod) * (d * a->D[b]);
            bias += d * a->S[b];
        }
        return sum - 8 * bias;
    }

    /// <summary>
    /// Q4_0, AVX-512 VBMI, 4 blocks (72 bytes) per step against the activations' nibble order (<see cref="ActQ8.Nib"/>):
    /// two overlapping 64-byte loads cover the 72 bytes without reading past them; one vpermt2b packs the 4 blocks'
    /// 16 quant bytes into the 4 128-bit lanes, another puts each block's half scale in the top of 4 dwords. Low and
    /// high nibbles then need only a shift and masks; the −8 offset is an int32 subtraction of the precomputed 8·Σq.
    /// Each step: 2 vpmaddubsw, 1 vpmaddwd, 1 convert, 1 FMA into a float accumulator reduced once per row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q4_0Vbmi(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_0*)w;
        int nb = a->Cols / 32, groups = nb / 4, g = 0;
        byte* nib = a->Nib;
        var qsIdx = Vector512.Create((byte)2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
            38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
            56, 57, 58, 59, 60, 61, 62, 63, 120, 121, 122, 123, 124, 125, 126, 127);
        var dIdx = Vector512.Create((byte)0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1,
            18, 18, 18, 19, 18, 18, 18, 19, 18, 18, 18, 19, 18, 18, 18, 19,
            36, 36, 36, 37, 36, 36, 36, 37, 36, 36, 36, 37, 36, 36, 36, 37,
            54, 54, 54, 55, 54, 54, 54, 55, 54, 54, 54, 55, 54, 54, 54, 55);
        var low4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc0 = default, acc1 = default;
        byte* p = (byte*)blk;
        for (; g + 2 <= groups; g += 2, p += 2 * 4 * sizeof(BlockQ4_0), nib += 512)
        {
            PrefetchAhead(p, 3);                          // 8 blocks, 144 bytes
            acc0 = Q4_0Group(p, nib, acc0, qsIdx, dIdx, low4);
            acc1 = Q4_0Group(p + 4 * sizeof(BlockQ4_0), nib + 256, acc1, qsIdx, dIdx, low4);
        }
        if (g < groups) { acc0 = Q4_0Group(p, nib, acc0, qsIdx, dIdx, low4); g++; }
        return Q4_0Tail(blk, 4 * g, a, Vector512.Sum(acc0 + acc1), 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q4_0Group(byte* p, byte* nib, Vector512<float> acc, Vector512<byte> qsIdx, Vector512<byte> dIdx, Vector512<byte> low4)
    {
        var lo64 = Vector512.Load(p);
        var hi64 = Vector512.Load(p + 8);                 // bytes 8..71: index 64 + j − 8 for byte j ≥ 64
        var qs = Avx512Vbmi.PermuteVar64x8x2(lo64, qsIdx, hi64);
        var dh = Avx512Vbmi.PermuteVar64x8x2(lo64, dIdx, hi64).AsInt32();
        var ql = qs & low4;
        var qh = Avx512BW.ShiftRightLogical(qs.AsUInt16(), 4).AsByte() & low4;
        var pairs = Avx512BW.MultiplyAddAdjacent(ql, Vector512.Load((sbyte*)nib)) + Avx512BW.MultiplyAddAdjacent(qh, Vector512.Load((sbyte*)nib + 64));
        var prod = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One) - Vector512.Load((int*)(nib + 192));
        var dw = HalfToSingle(Vector512.ShiftRightLogical(dh.AsUInt32(), 16));   // each block's half sits in the top of its dwords
        return Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod), dw * Vector512.Load((float*)(nib + 128)), acc);
    }

    /// <summary>Pairs of u8×s8 → int16 (vpmaddubsw), then pairs of int16 × per-lane int16 scales → int32 (vpmaddwd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> ScaledDot(Vector512<byte> u, Vector512<sbyte> s, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), scale);

    /// <summary>Two 32-byte activation runs as one register (the two sub-blocks a 64-byte weight load covers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Join(sbyte* lo, sbyte* hi) => Join(Vector256.Load(lo), Vector256.Load(hi));

    /// <summary>
    /// Q4_K and Q5_K, 512-bit: a 64-byte load of qs covers groups g and g+1; its low nibbles are sub-blocks 2g and
    /// 2g+2, its high nibbles 2g+1 and 2g+3, matched by joined activation runs; Q5_K's fifth bits come from each
    /// 256-bit half of qh shifted so bit j of sub-block j lands on bit 4. Sub-block scales are spread to int16 lanes
    /// with one vpermw each and applied inside vpmaddwd. The mins term stays in 8 lanes (one vpmaddwd against the block
    /// sums) and is accumulated as floats, so no super-block pays a horizontal sum or a scalar int → float conversion.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float K4Avx512<TK>(byte* w, ActQ8* a) where TK : IK4Layout
    {
        int nb = a->Cols / 256;
        var acc = Vector512<float>.Zero;
        var minAcc = Vector256<float>.Zero;
        var mask = Vector512.Create((byte)0x0F);
        var bit4 = Vector512.Create((byte)0x10);
        // int16 lane i of a 512-bit product covers bytes 2i, 2i+1: lanes 0-15 are the first sub-block, 16-31 the second.
        var idxA = Vector512.Create(Vector256.Create((short)0), Vector256.Create((short)2));   // sub-blocks 0 | 2
        var idxB = Vector512.Create(Vector256.Create((short)1), Vector256.Create((short)3));   // 1 | 3
        var idxC = Vector512.Create(Vector256.Create((short)4), Vector256.Create((short)6));   // 4 | 6
        var idxD = Vector512.Create(Vector256.Create((short)5), Vector256.Create((short)7));   // 5 | 7
        for (int b = 0; b < nb; b++, w += TK.BlockBytes)
        {
            PrefetchAhead(w, 3);                          // 144 / 176-byte super-block
            var blk = (BlockQ4_K*)w;                      // D, DMin, Scales: the same offsets in Q5_K
            KQuant.UnpackScalesMins(blk->Scales, out ulong scales8, out ulong mins8);
            sbyte* x = a->Q + 256 * b;
            var mins = Vector128.CreateScalar(mins8).AsByte();
            var minsDup = Avx2.ConvertToVector256Int16(Sse2.UnpackLow(mins, mins));            // m0 m0 m1 m1 … m7 m7
            var minProd = Avx2.MultiplyAddAdjacent(Vector256.Load(a->BSums + 16 * b), minsDup); // lane j: m_j·(bs_2j + bs_2j+1)
            var sc16 = Avx512BW.ConvertToVector512Int16(Vector128.CreateScalar(scales8).AsByte().ToVector256()).AsInt16();
            var q01 = Vector512.Load(w + TK.QsOffset);
            var q23 = Vector512.Load(w + TK.QsOffset + 64);
            var n0 = q01 & mask;                                                             // sub-blocks 0 | 2
            var n1 = Vector512.ShiftRightLogical(q01.AsUInt16(), 4).AsByte() & mask;         // 1 | 3
            var n2 = q23 & mask;                                                             // 4 | 6
            var n3 = Vector512.ShiftRightLogical(q23.AsUInt16(), 4).AsByte() & mask;         // 5 | 7
            if (TK.HasQh)
            {
                var qh = Vector256.Load(((BlockQ5_K*)w)->Qh).AsUInt16();
                n0 |= Join(Vector256.ShiftLeft(qh, 4), Vector256.ShiftLeft(qh, 2)).AsByte() & bit4;              // bits 0 | 2
                n1 |= Join(Vector256.ShiftLeft(qh, 3), Vector256.ShiftLeft(qh, 1)).AsByte() & bit4;              // bits 1 | 3
                n2 |= Join(qh, Vector256.ShiftRightLogical(qh, 2)).AsByte() & bit4;                              // bits 4 | 6
                n3 |= Join(Vector256.ShiftRightLogical(qh, 1), Vector256.ShiftRightLogical(qh, 3)).AsByte() & bit4; // bits 5 | 7
            }
            var sumi = ScaledDot(n0, Join(x, x + 64), Avx512BW.PermuteVar32x16(sc16, idxA))
                     + ScaledDot(n1, Join(x + 32, x + 96), Avx512BW.PermuteVar32x16(sc16, idxB))
                     + ScaledDot(n2, Join(x + 128, x + 192), Avx512BW.PermuteVar32x16(sc16, idxC))
                     + ScaledDot(n3, Join(x + 160, x + 224), Avx512BW.PermuteVar32x16(sc16, idxD));
            float dy = a->D[b];
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(HalfBits.ToFloat(blk->D) * dy), acc);
            minAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(minProd), Vector256.Create(HalfBits.ToFloat(blk->DMin) * dy), minAcc);
        }
        return Vector512.Sum(acc) - Vector256.Sum(minAcc);
    }

    /// <summary>
    /// Q6_K, 512-bit: per half (128 elements) a 64-byte load of ql gives elements 0-63 in its low nibbles and 64-127 in
    /// its high nibbles, in activation order; the 2 high bits come from qh shifted into bits 4-5. Each 16-element group's
    /// int8 scale is spread over its 8 int16 lanes with vpermw; the −32 offset is applied once via the block sums, lane-wise.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q6_KAvx512(byte* w, ActQ8* a)
    {
        var blk = (BlockQ6_K*)w;
        int nb = a->Cols / 256;
        var acc = Vector512<float>.Zero;
        var m4 = Vector512.Create((byte)0x0F);
        var m30 = Vector512.Create((byte)0x30);
        // int16 lane i covers elements 2i, 2i+1 of a 64-element run: group (i / 8) of that run.
        var idx = Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var four = Vector512.Create((short)4);
        var eight = Vector512.Create((short)8);
        for (int b = 0; b < nb; b++, blk++)
        {
            PrefetchAhead(blk, 4);
            sbyte* x = a->Q + 256 * b;
            var sc = Avx512BW.ConvertToVector512Int16(Vector256.Create(Vector128.Load(blk->Scales), Vector128<sbyte>.Zero));
            // 32·Σ scale_j·bsum_j in 8 lanes, subtracted lane-wise (integers: the same total as one horizontal sum)
            var bias = Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(a->BSums + 16 * b), sc.GetLower()), 5);
            var sumi = Vector512<int>.Zero - bias.ToVector512();
            for (int half = 0; half < 2; half++)
            {
                var l = Vector512.Load(blk->Ql + 64 * half);
                var qh = Vector256.Load(blk->Qh + 32 * half).AsUInt16();
                // bits 4-5 for elements 0-31 | 32-63 | 64-95 | 96-127: (qh << 4), (qh << 2), qh, (qh >> 2), each & 0x30
                var hA = Vector512.Create(Vector256.ShiftLeft(qh, 4), Vector256.ShiftLeft(qh, 2)).AsByte() & m30;
                var hB = Vector512.Create(qh, Vector256.ShiftRightLogical(qh, 2)).AsByte() & m30;
                var qA = (l & m4) | hA;
                var qB = (Vector512.ShiftRightLogical(l.AsUInt16(), 4).AsByte() & m4) | hB;
                var baseIdx = half == 0 ? idx : idx + eight;
                sumi += ScaledDot(qA, Vector512.Load(x + 128 * half), Avx512BW.PermuteVar32x16(sc, baseIdx))
                      + ScaledDot(qB, Vector512.Load(x + 128 * half + 64), Avx512BW.PermuteVar32x16(sc, baseIdx + four));
            }
            var total = Avx512F.ConvertToVector512Single(sumi);
            acc = Avx512F.FusedMultiplyAdd(total, Vector512.Create(HalfBits.ToFloat(blk->D) * a->D[b]), acc);
        }
        return Vector512.Sum(acc);
    }

    /// <summary>Q4_1: x = d·q + m, so Σ x·y = d·dy·Σ q·qy + m·(dy·Σ qy); unsigned nibbles straight into the u8×s8 dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q4_1<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot => WithMin<TDot, Q4_1Quants>(w, a);

    /// <summary>
    /// The 32-blocks with a min (Q4_1, Q5_1): x = d·q + m, so Σ x·y = d·dy·Σ q·qy + m·(dy·Σ qy), the unsigned q of
    /// <typeparamref name="TQuants"/> straight into the u8×s8 dot and the min through the activations' d·Σq (ActQ8.S);
    /// d and m are both blocks' first two fields.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float WithMin<TDot, TQuants>(byte* w, ActQ8* a) where TDot : IU8S8Dot where TQuants : IMinQuants32
    {
        int nb = a->Cols / 32;
        var acc = Vector256<float>.Zero;
        float offset = 0;
        for (int b = 0; b < nb; b++, w += TQuants.BlockBytes)
        {
            PrefetchAhead(w, 1);
            var p = TDot.Dot(TQuants.Quants(w), Vector256.Load(a->Q + 32 * b));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(HalfBits.ToFloat(((Half*)w)[0]) * a->D[b]), acc);
            offset += HalfBits.ToFloat(((Half*)w)[1]) * a->S[b];
        }
        return HSum(acc) + offset;
    }

    /// <summary>A 32-block format with a min: its size and its 32 unsigned quants in element order.</summary>
    private interface IMinQuants32
    {
        static abstract int BlockBytes { get; }
        static abstract Vector256<byte> Quants(byte* blk);
    }

    private readonly struct Q4_1Quants : IMinQuants32
    {
        public static int BlockBytes => sizeof(BlockQ4_1);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Quants(byte* blk) => Nibbles32(((BlockQ4_1*)blk)->Qs);
    }

    /// <summary>Q5_0: unsigned 5-bit q (fifth bit j of qh moved to bit 4 of byte j), then Σ (q − 16)·y = Σ q·y − 16·Σ y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q5_0<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ5_0*)w;
        int nb = a->Cols / 32;
        var acc = Vector256<float>.Zero;
        float bias = 0;
        // Spread the 32 bits of qh to one byte each: byte j takes byte j/8 of qh (vpshufb), then tests bit j%8.
        var spread = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var bitOf = Vector256.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        for (int b = 0; b < nb; b++, blk++)
        {
            PrefetchAhead(blk, 1);
            var qh = Vector256.Create(*(uint*)blk->Qh).AsByte();
            var bytes = Avx2.Shuffle(qh, spread);
            var high = Vector256.Equals(bytes & bitOf, bitOf) & Vector256.Create((byte)0x10);
            var p = TDot.Dot(Nibbles32(blk->Qs) | high, Vector256.Load(a->Q + 32 * b));
            float d = HalfBits.ToFloat(blk->D);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(d * a->D[b]), acc);
            bias += d * a->S[b];
        }
        return HSum(acc) - 16 * bias;
    }
}
