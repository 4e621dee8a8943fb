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
/// 32-element blocks per 512-bit register.
/// </summary>
internal static unsafe class DotX86
{
    // ---------- helpers ----------

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

    public static float Q8_0<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ8_0*)w;
        int nb = a->Cols / 32;
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < nb; b++, blk++)
        {
            var p = DotS8S8<TDot>(Vector256.Load(blk->Qs), Vector256.Load(a->Q + 32 * b));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create((float)blk->D * a->D[b]), acc);
        }
        return HSum(acc);
    }

    // Q4_0 with unsigned nibbles: Σ (q − 8)·y = Σ q·y − 8·Σ y; dy·Σ qy is the activation's S.
    public static float Q4_0<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ4_0*)w;
        int nb = a->Cols / 32;
        var acc = Vector256<float>.Zero;
        float bias = 0;
        for (int b = 0; b < nb; b++, blk++)
        {
            float d = (float)blk->D;
            var p = TDot.Dot(Nibbles32(blk->Qs), Vector256.Load(a->Q + 32 * b));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(d * a->D[b]), acc);
            bias += d * a->S[b];
        }
        return HSum(acc) - 8 * bias;
    }

    /// <summary>
    /// Q4_K: per super-block the 8 sub-block dot products are scaled by their 6-bit scales in int32 and converted
    /// once; the mins term uses the activation's block sums.
    /// </summary>
    public static float Q4_K<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ4_K*)w;
        int nb = a->Cols / 256;
        uint* sm = stackalloc uint[4];
        byte* scales = (byte*)sm, mins = scales + 8;
        var acc = Vector256<float>.Zero;
        float minTerm = 0;
        var mask = Vector256.Create((byte)0x0F);
        for (int b = 0; b < nb; b++, blk++)
        {
            KQuant.UnpackScalesMins(blk->Scales, sm);
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            int summ = 0;
            for (int j = 0; j < 8; j++) summ += mins[j] * (bs[2 * j] + bs[2 * j + 1]);
            var sumi = Vector256<int>.Zero;
            for (int g = 0; g < 4; g++)
            {
                var q = Vector256.Load(blk->Qs + 32 * g);
                var lo = q & mask;
                var hi = Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & mask;
                var p1 = TDot.Dot(lo, Vector256.Load(x + 64 * g));
                var p2 = TDot.Dot(hi, Vector256.Load(x + 64 * g + 32));
                sumi += p1 * Vector256.Create((int)scales[2 * g]) + p2 * Vector256.Create((int)scales[2 * g + 1]);
            }
            float dy = a->D[b];
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create((float)blk->D * dy), acc);
            minTerm += (float)blk->DMin * dy * summ;
        }
        return HSum(acc) - minTerm;
    }

    /// <summary>
    /// Q6_K: unsigned 6-bit q (0..63) against the activations, then Σ (q − 32)·y = Σ q·y − 32·Σ y with Σ y from
    /// the block sums; each 16-element group carries its own int8 scale (lanes 0-3 and 4-7 of a 32-byte dot).
    /// </summary>
    public static float Q6_K<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot
    {
        var blk = (BlockQ6_K*)w;
        int nb = a->Cols / 256;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x03);
        for (int b = 0; b < nb; b++, blk++)
        {
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
                sumi += TDot.Dot(q1, Vector256.Load(xh)) * Pair(s[0], s[1])
                      + TDot.Dot(q2, Vector256.Load(xh + 32)) * Pair(s[2], s[3])
                      + TDot.Dot(q3, Vector256.Load(xh + 64)) * Pair(s[4], s[5])
                      + TDot.Dot(q4, Vector256.Load(xh + 96)) * Pair(s[6], s[7]);
            }
            var total = Avx.ConvertToVector256Single(sumi - Vector256.CreateScalar(32 * bias));
            acc = Fma.MultiplyAdd(total, Vector256.Create((float)blk->D * a->D[b]), acc);
        }
        return HSum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Pair(int lo, int hi) => Vector256.Create(Vector128.Create(lo), Vector128.Create(hi));

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

    /// <summary>Lanes 0-7 get the first block's scale, lanes 8-15 the second's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TwoScales(float s0, float s1) => Vector512.Create(Vector256.Create(s0), Vector256.Create(s1));

    public static float Q8_0Avx512(byte* w, ActQ8* a)
    {
        var blk = (BlockQ8_0*)w;
        int nb = a->Cols / 32, b = 0;
        var acc = Vector512<float>.Zero;
        for (; b + 2 <= nb; b += 2, blk += 2)
        {
            var wq = Vector512.Create(Vector256.Load(blk[0].Qs), Vector256.Load(blk[1].Qs));
            var p = DotS8S8x64(wq, Vector512.Load(a->Q + 32 * b));
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), TwoScales((float)blk[0].D * a->D[b], (float)blk[1].D * a->D[b + 1]), acc);
        }
        float sum = Vector512.Sum(acc);
        for (; b < nb; b++, blk++)
        {
            var p = DotS8S8<VnniDot>(Vector256.Load(blk->Qs), Vector256.Load(a->Q + 32 * b));
            sum += Vector256.Sum(p) * ((float)blk->D * a->D[b]);
        }
        return sum;
    }

    public static float Q4_0Avx512(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_0*)w;
        int nb = a->Cols / 32, b = 0;
        var acc = Vector512<float>.Zero;
        float bias = 0;
        // Each 128-bit lane gets one block's 16 bytes; lanes 1 and 3 are shifted right by 4 (per 16-bit element),
        // so after masking the register holds [lo(b), hi(b), lo(b+1), hi(b+1)]: the activations' order.
        var shifts = Vector512.Create(Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)), Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)));
        var mask = Vector512.Create((byte)0x0F);
        for (; b + 2 <= nb; b += 2, blk += 2)
        {
            var n0 = Vector128.Load(blk[0].Qs);
            var n1 = Vector128.Load(blk[1].Qs);
            var both = Vector512.Create(Vector256.Create(n0, n0), Vector256.Create(n1, n1)).AsUInt16();
            var q = Avx512BW.ShiftRightLogicalVariable(both, shifts).AsByte() & mask;
            var p = DotU8S8x64(q, Vector512.Load(a->Q + 32 * b));
            float d0 = (float)blk[0].D, d1 = (float)blk[1].D;
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), TwoScales(d0 * a->D[b], d1 * a->D[b + 1]), acc);
            bias += d0 * a->S[b] + d1 * a->S[b + 1];
        }
        float sum = Vector512.Sum(acc);
        for (; b < nb; b++, blk++)
        {
            float d = (float)blk->D;
            var p = VnniDot.Dot(Nibbles32(blk->Qs), Vector256.Load(a->Q + 32 * b));
            sum += Vector256.Sum(p) * (d * a->D[b]);
            bias += d * a->S[b];
        }
        return sum - 8 * bias;
    }
}
