namespace DeepSeekCpu.Kernels.Reference;

// MXFP4 (Reference/MXFP4.cs) with float32 activations: the specification of the GEMV bodies
// DotX86.MXFP4F32Avx512/Avx2 and DotArm.MXFP4F32 (Gemv.FloatDotFor), used for ActivationPrecision.Float32 matrices.

internal static unsafe partial class DotReference
{
    /// <summary>
    /// MXFP4 row · float32 activations, nothing rounded (the float32-activation GEMV, ActivationPrecision.Float32):
    /// Σ over blocks of 2^(e − 128) · Σ_j level(code_j) · x_j. DeepSeek-V4's reference fixture computes its FP4
    /// experts this way (act_quant off, ../shared/fixtures/deepseek-v4-tiny/README.md); DeepSeek's deployment instead
    /// rounds the activations to FP8 e4m3 per 128 before fp4_gemm (inference/model.py linear → act_quant), and ggml's
    /// MXFP4 dot (<see cref="MXFP4"/>) to Q8_0, which moved the fixture's logits by 0.016.
    /// </summary>
    public static float MXFP4F32(byte* w, float* x, int cols, float* scales) => NibbleGridF32<MXFP4Grid>(w, x, cols);

    /// <summary>Σ over 32-element blocks of scale · Σ level·x, the levels looked up by the nibbles (<see cref="INibbleGrid"/>).</summary>
    internal static float NibbleGridF32<TGrid>(byte* w, float* x, int cols) where TGrid : INibbleGrid
    {
        var values = TGrid.Values;
        float sum = 0;
        for (int b = 0; b < cols / 32; b++, w += TGrid.BlockBytes, x += 32)
        {
            byte* qs = w + TGrid.BlockBytes - 16;
            float part = 0;
            for (int j = 0; j < 16; j++) part += values[qs[j] & 0xF] * x[j] + values[qs[j] >> 4] * x[j + 16];
            sum += TGrid.Scale(w) * part;
        }
        return sum;
    }
}
