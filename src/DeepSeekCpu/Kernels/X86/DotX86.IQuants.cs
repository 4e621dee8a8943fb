using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels.X86;

// The i-quants on x86: each super-block is decoded to its integer form (IQuantDecode.Block: 256 signed bytes, a scale
// per 16), then multiplied with the Q8_K activations by the sign trick (|v| × x with v's sign, vpmaddubsw: pairs
// |v|·x ≤ 2·62·127 fit int16) and vpmaddwd against each 16's scale. One body per width serves all seven types.
internal static unsafe partial class DotX86
{
    /// <summary>I-quants, 256-bit (the same body for AVX2 and AVX-VNNI: the scales are applied inside vpmaddwd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQuant<T>(byte* w, ActQ8* a) where T : IIQuant
    {
        sbyte* v = stackalloc sbyte[256];
        short* sc = stackalloc short[16];
        ulong* masks = stackalloc ulong[32];
        int size = IQuantDecode.BlockBytes<T>();
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < a->Cols / 256; b++, w += size)
        {
            PrefetchAhead(w, 2);
            float f = IQuantDecode.Block<T>(w, v, sc, masks);
            sbyte* x = a->Q + 256 * b;
            var sumi = Vector256<int>.Zero;
            for (int k = 0; k < 8; k++)   // 32 elements: the 16s 2k and 2k+1
            {
                var q = Vector256.Load(v + 32 * k);
                var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(q), Avx2.Sign(Vector256.Load(x + 32 * k), q));
                sumi += Avx2.MultiplyAddAdjacent(pairs, Pair16(sc[2 * k], sc[2 * k + 1]));
            }
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(f * a->D[b]), acc);
        }
        return HSum(acc);
    }

    /// <summary>I-quants, 512-bit: 64 elements per register, each 16's scale spread over its 8 int16 lanes by vpermw.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQuantAvx512<T>(byte* w, ActQ8* a) where T : IIQuant
    {
        sbyte* v = stackalloc sbyte[256];
        short* sc = stackalloc short[32];          // 16 scales; the upper half is never indexed
        ulong* masks = stackalloc ulong[32];
        int size = IQuantDecode.BlockBytes<T>();
        var acc = Vector512<float>.Zero;
        // int16 lane i of a 64-element product covers elements 2i, 2i+1: the 16 (i / 8) of that run
        var idx = Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var four = Vector512.Create((short)4);
        for (int b = 0; b < a->Cols / 256; b++, w += size)
        {
            PrefetchAhead(w, 2);
            float f = IQuantDecode.Block<T>(w, v, sc, masks);
            var scales = Vector512.Load(sc);
            sbyte* x = a->Q + 256 * b;
            var sumi = Vector512<int>.Zero;
            var run = idx;
            for (int k = 0; k < 4; k++, run += four)
            {
                var q = Vector512.Load(v + 64 * k);
                var xs = Vector512.Load(x + 64 * k);
                var signedX = Vector512.ConditionalSelect(Vector512.LessThan(q, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - xs, xs);
                sumi += ScaledDot(Avx512BW.Abs(q), signedX, Avx512BW.PermuteVar32x16(scales, run));
            }
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(f * a->D[b]), acc);
        }
        return Vector512.Sum(acc);
    }
}
