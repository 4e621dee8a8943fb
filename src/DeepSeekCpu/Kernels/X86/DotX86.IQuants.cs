using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels.X86;

// The i-quants on x86 (driver: IQuantDecode.Dot): a decoded super-block (256 signed values, a scale per 16) times the
// Q8_K activations by the sign trick, |v| × (x with v's sign) in vpmaddubsw (pairs |v|·x ≤ 2·62·127 fit int16), then
// vpmaddwd against each 16's scale. One body per width serves all seven types.

/// <summary>256-bit (AVX2; the same on AVX-VNNI machines, since the scales are applied inside vpmaddwd).</summary>
internal readonly unsafe struct IQuantDotAvx2 : IDecodedDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(DecodedBlock* d, sbyte* x)
    {
        var sumi = Vector256<int>.Zero;
        for (int k = 0; k < 8; k++)   // 32 elements: the 16s 2k and 2k+1
        {
            var q = Vector256.Load(d->V + 32 * k);
            var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(q), Avx2.Sign(Vector256.Load(x + 32 * k), q));
            var scales = Vector256.Create(Vector128.Create(d->Scales[2 * k]), Vector128.Create(d->Scales[2 * k + 1]));
            sumi += Avx2.MultiplyAddAdjacent(pairs, scales);
        }
        return Vector256.Sum(sumi);
    }
}

/// <summary>512-bit: 64 elements per register, each 16's scale spread over its 8 int16 lanes by vpermw.</summary>
internal readonly unsafe struct IQuantDotAvx512 : IDecodedDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(DecodedBlock* d, sbyte* x)
    {
        // int16 lane i of a 64-element product covers elements 2i, 2i+1: the 16 (i / 8) of that run
        var run = Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var scales = Vector512.Load(d->Scales);
        var sumi = Vector512<int>.Zero;
        for (int k = 0; k < 4; k++, run += Vector512.Create((short)4))
        {
            var q = Vector512.Load(d->V + 64 * k);
            var xs = Vector512.Load(x + 64 * k);
            var signedX = Vector512.ConditionalSelect(Vector512.LessThan(q, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - xs, xs);
            var pairs = Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(q), signedX);
            sumi += Avx512BW.MultiplyAddAdjacent(pairs, Avx512BW.PermuteVar32x16(scales, run));
        }
        return Vector512.Sum(sumi);
    }
}
