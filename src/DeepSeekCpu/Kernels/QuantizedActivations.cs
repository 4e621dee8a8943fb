using System.Runtime.CompilerServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// One token's activations quantized to 8 bits for the integer dot products, kept as separate arrays (not ggml's
/// interleaved block_q8_0 / block_q8_K) so SIMD bodies load 64 consecutive quants at once.
/// Q8_0 style (for Q8_0/Q4_0/Q4_1/Q5_0 weights): a float scale per 32 (<see cref="D"/>) and <see cref="S"/> = d·Σq per 32
/// (ggml's block_q8_1.s, used by offset formats). Q8_K style (for the K-quants): a float scale per 256 and
/// <see cref="BSums"/> = Σq per 16, exactly as ggml's quantize_row_q8_K_ref.
/// Scales stay float32 (ggml rounds block_q8_0.d to half), which is slightly more accurate.
/// </summary>
public unsafe struct ActQ8
{
    public sbyte* Q;
    public float* D;
    public float* S;
    public short* BSums;
    public int Cols;

    /// <summary>Bytes one token needs (either style), 64-byte aligned sections.</summary>
    public static long BytesFor(int cols) => Align(cols) + 2 * Align(cols / 32 * 4) + Align(cols / 16 * 2) + 64;

    private static long Align(long v) => (v + 63) & ~63L;

    /// <summary>Lays the arrays out in <paramref name="mem"/> (<see cref="BytesFor"/> bytes).</summary>
    public static ActQ8 At(byte* mem, int cols)
    {
        var a = new ActQ8 { Cols = cols };
        a.Q = (sbyte*)mem; mem += Align(cols);
        a.D = (float*)mem; mem += Align(cols / 32 * 4);
        a.S = (float*)mem; mem += Align(cols / 32 * 4);
        a.BSums = (short*)mem;
        return a;
    }

    /// <summary>Which activation style weights of <paramref name="t"/> multiply against.</summary>
    public static bool UsesQ8K(DType t) => t is DType.Q4_K or DType.Q5_K or DType.Q6_K or DType.Q8_K;

    /// <summary>Q8_0 style: d = max|x|/127, q = round-half-even(x/d), s = d·Σq, per 32.</summary>
    public static void QuantizeQ8_0(float* x, ActQ8* a)
    {
        for (int b = 0; b < a->Cols / 32; b++)
        {
            float* xb = x + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(xb[j]));
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                int q = Quantize.NearestInt(xb[j] * id);
                a->Q[32 * b + j] = (sbyte)q;
                sum += q;
            }
            a->D[b] = d;
            a->S[b] = d * sum;
        }
    }

    /// <summary>Q8_K style: quantize_row_q8_K_ref (iscale = -127/max, d = 1/iscale, bsums per 16).</summary>
    public static void QuantizeQ8_K(float* x, ActQ8* a)
    {
        BlockQ8_K blk;
        for (int b = 0; b < a->Cols / 256; b++)
        {
            Quantize.Q8_K(x + 256 * b, &blk);
            Unsafe.CopyBlock(a->Q + 256 * b, blk.Qs, 256);
            Unsafe.CopyBlock(a->BSums + 16 * b, blk.BSums, 32);
            a->D[b] = blk.D;
        }
    }

    public static void QuantizeFor(DType t, float* x, ActQ8* a)
    {
        if (UsesQ8K(t)) QuantizeQ8_K(x, a); else QuantizeQ8_0(x, a);
    }
}
