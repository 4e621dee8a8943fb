using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

// Q2_K, Q3_K, Q5_1, IQ4_NL, IQ4_XS: the specification of each layout (structs in Weights/Blocks.KQuants.cs), written
// from ggml-quants.c dequantize_row_* (llama.cpp 3f545be) and checked against that code's own output on fixed random
// blocks (tests/DeepSeekCpu.Kernels.Tests/Data/ggml).
internal static unsafe partial class Dequantize
{
    // dequantize_row_q5_1: q = low nibble | fifth bit from qh (as Q5_0); x = q * d + m
    public static void Q5_1(BlockQ5_1* b, Span<float> y)
    {
        float d = (float)b->D, m = (float)b->M;
        uint qh = *(uint*)b->Qh;
        for (int j = 0; j < 16; j++)
        {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = ((b->Qs[j] & 0x0F) | h0) * d + m;
            y[j + 16] = ((b->Qs[j] >> 4) | h1) * d + m;
        }
    }

    // dequantize_row_q2_K: sub-block s = 8 h + 2 j + k covers elements 128 h + 32 j + 16 k .. + 15 (bits 2j of qs[16k + l])
    public static void Q2_K(BlockQ2_K* b, Span<float> y)
    {
        float d = (float)b->D, min = (float)b->DMin;
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 2; k++)
                {
                    int sc = b->Scales[8 * h + 2 * j + k];
                    float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    byte* q = b->Qs + 32 * h + 16 * k;
                    for (int l = 0; l < 16; l++) y[128 * h + 32 * j + 16 * k + l] = dl * ((q[l] >> (2 * j)) & 3) - ml;
                }
    }

    // dequantize_row_q3_K: as Q2_K's low bits, minus 4 where bit 4h + j of hmask[16k + l] is clear; signed scales
    public static void Q3_K(BlockQ3_K* b, Span<float> y)
    {
        float d = (float)b->D;
        sbyte* scales = stackalloc sbyte[16];
        Q3KScales.Unpack(b->Scales, scales);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 2; k++)
                {
                    float dl = d * scales[8 * h + 2 * j + k];
                    byte* q = b->Qs + 32 * h + 16 * k;
                    byte* hm = b->HMask + 16 * k;
                    int bit = 1 << (4 * h + j);
                    for (int l = 0; l < 16; l++)
                        y[128 * h + 32 * j + 16 * k + l] = dl * (((q[l] >> (2 * j)) & 3) - ((hm[l] & bit) != 0 ? 0 : 4));
                }
    }

    // dequantize_row_iq4_nl: x = d * kvalues_iq4nl[index], low nibbles first
    public static void IQ4_NL(BlockIQ4_NL* b, Span<float> y) => GridRun((float)b->D, b->Qs, y, IQ4NL.Values);

    // dequantize_row_iq4_xs: each sub-block of 32 as one IQ4_NL block with scale d * (ls - 32)
    public static void IQ4_XS(BlockIQ4_XS* b, Span<float> y)
    {
        float d = (float)b->D;
        for (int ib = 0; ib < 8; ib++) GridRun(d * IQ4NL.Scale(b, ib), b->Qs + 16 * ib, y.Slice(32 * ib, 32), IQ4NL.Values);
    }

    /// <summary>x = d · values[index] over one run of 32 (16 bytes of indices, low nibbles first): IQ4 and MXFP4.</summary>
    private static void GridRun(float d, byte* qs, Span<float> y, ReadOnlySpan<sbyte> values)
    {
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * values[qs[j] & 0xF];
            y[j + 16] = d * values[qs[j] >> 4];
        }
    }
}
