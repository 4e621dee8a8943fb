using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>Deterministic inputs and matrix builders shared by the kernel tests.</summary>
internal static unsafe class TestData
{
    /// <summary>Normally distributed values (Box-Muller) with a few larger outliers, as in real weights.</summary>
    public static float[] Gaussian(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2)) * scale;
            if (rng.Next(97) == 0) v[i] *= 4;
        }
        return v;
    }

    /// <summary>A float matrix as a WeightMatrix over native memory (owned).</summary>
    public static WeightMatrix F32Matrix(float[] data, int rows, int cols)
    {
        var buf = new NativeBuffer((long)rows * cols * 4);
        data.AsSpan(0, rows * cols).CopyTo(new Span<float>(buf.Pointer, rows * cols));
        return new WeightMatrix("test", DType.F32, rows, cols, buf.Pointer, null, buf);
    }

    /// <summary>The matrix in <paramref name="type"/> (FP8: nearest E4M3 codes with per-128x128 block scales).</summary>
    public static WeightMatrix Matrix(DType type, float[] data, int rows, int cols)
    {
        using var f32 = F32Matrix(data, rows, cols);
        if (type != DType.F8_E4M3) return Quantize.Matrix(f32, type);
        int sr = (rows + 127) / 128, sc = (cols + 127) / 128;
        var buf = new NativeBuffer((long)rows * cols + (long)sr * sc * 4 + 64);
        byte* q = buf.Pointer;
        float* scales = (float*)(buf.Pointer + ((rows * cols + 63) & ~63));
        for (int br = 0; br < sr; br++)
        for (int bc = 0; bc < sc; bc++)
        {
            float amax = 0;
            for (int r = br * 128; r < Math.Min(rows, br * 128 + 128); r++)
            for (int c = bc * 128; c < Math.Min(cols, bc * 128 + 128); c++) amax = Math.Max(amax, Math.Abs(data[r * cols + c]));
            float s = amax > 0 ? amax / 448f : 1f;
            scales[br * sc + bc] = s;
            for (int r = br * 128; r < Math.Min(rows, br * 128 + 128); r++)
            for (int c = bc * 128; c < Math.Min(cols, bc * 128 + 128); c++) q[r * cols + c] = NearestFp8(data[r * cols + c] / s);
        }
        return new WeightMatrix("test-fp8", DType.F8_E4M3, rows, cols, q, scales, buf);
    }

    private static readonly float[] Fp8Values = Enumerable.Range(0, 256).Select(i => Dequantize.Fp8E4M3ToFloat((byte)i)).ToArray();

    public static byte NearestFp8(float v)
    {
        int best = 0;
        float bestErr = float.MaxValue;
        for (int i = 0; i < 256; i++)
        {
            if (float.IsNaN(Fp8Values[i])) continue;
            float e = Math.Abs(Fp8Values[i] - v);
            if (e < bestErr) { bestErr = e; best = i; }
        }
        return (byte)best;
    }

    /// <summary>y[t, r] = Σ_c deq(W)[r, c] · x[t, c] in double: the float reference of MatMul.</summary>
    public static double[] ReferenceMatMul(WeightMatrix w, float[] x, int n)
    {
        var deq = Dequantize.Matrix(w);
        var y = new double[n * w.Rows];
        for (int t = 0; t < n; t++)
        for (int r = 0; r < w.Rows; r++)
        {
            double s = 0;
            for (int c = 0; c < w.Cols; c++) s += (double)deq[r * w.Cols + c] * x[t * w.Cols + c];
            y[t * w.Rows + r] = s;
        }
        return y;
    }

    /// <summary>√(Σ_c (W[r,c] x[t,c])²): the scale of rounding error in one output.</summary>
    public static double TermNorm(WeightMatrix w, float[] deq, float[] x, int t, int r)
    {
        double s = 0;
        for (int c = 0; c < w.Cols; c++) { double p = (double)deq[r * w.Cols + c] * x[t * w.Cols + c]; s += p * p; }
        return Math.Sqrt(s);
    }
}
