using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>Dequantizes a column segment of one weight row to float32 for the tiled GEMM.</summary>
internal static unsafe class WeightDecode
{
    /// <summary>Columns [k0, k0 + len) of row r (k0 and len whole blocks) into dst, FP8 block scales applied.</summary>
    public static void Segment(WeightMatrix w, int r, int k0, int len, float* dst)
    {
        var type = w.Type;
        byte* src = w.Row(r) + type.ByteCount(k0);
        var span = new Span<float>(dst, len);
        Dequantize.Row(type, src, span);
        if (type == DType.F8_E4M3)
        {
            float* s = w.BlockScales + (r / WeightMatrix.Fp8BlockSize) * w.ScaleCols;
            for (int i = 0; i < len; i++) dst[i] *= s[(k0 + i) / WeightMatrix.Fp8BlockSize];
        }
    }
}
