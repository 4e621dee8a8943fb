using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

// MXFP4 (Weights/BlockMXFP4.cs): the specification of the layout and ggml's quantizer, written from ggml-quants.c
// dequantize_row_mxfp4 and quantize_row_mxfp4_ref (llama.cpp 3f545be and later) and checked against that code's own
// output on fixed inputs (tests/DeepSeekCpu.Kernels.Tests/Data/ggml). The dot is DotReference.MXFP4.
internal static unsafe partial class Dequantize
{
    // dequantize_row_mxfp4: x = kvalues_mxfp4[code] · 2^(e − 128), low nibbles first
    public static void MXFP4(BlockMXFP4* b, Span<float> y) => GridRun(Mxfp4.HalfScale(b->E), b->Qs, y, Mxfp4.Values);
}

internal static unsafe partial class Quantize
{
    /// <summary>
    /// quantize_row_mxfp4_ref: e = floor(log2(max|x|)) − 2 + 127, so max|x| is 4 to 8 times 2^(e − 127) (those above
    /// 6 saturate to the top level ±6, ggml's choice); each x to the nearest level (the first of equal distances). An all-zero block gets e = 0. ggml casts a negative exponent (max|x| below 2^−125) to uint8
    /// without a check; we store 0 there (the block then rounds to zeros and ±2^−128 multiples, as close as E8M0 goes).
    /// </summary>
    public static void MXFP4(float* x, BlockMXFP4* y)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            if (amax < MathF.Abs(x[j])) amax = MathF.Abs(x[j]);
        int e = amax > 0 ? (int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : 0;
        y->E = (byte)Math.Clamp(e, 0, 255);
        float d = Mxfp4.HalfScale(y->E);
        for (int j = 0; j < 16; j++)
            y->Qs[j] = (byte)(NearestLevel(x[j], d) | NearestLevel(x[j + 16], d) << 4);
    }

    // best_index_mxfp4: the index of the smallest |level · d − x|, the first one on ties
    private static int NearestLevel(float x, float d)
    {
        var values = Mxfp4.Values;
        int best = 0;
        float bestErr = MathF.Abs(values[0] * d - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(values[i] * d - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }
}
