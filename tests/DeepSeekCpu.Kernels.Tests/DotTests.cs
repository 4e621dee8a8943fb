using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Every SIMD dot body this machine can run against the scalar reference on identical quantized inputs, and the
/// quantized dot against a plain f32 dot within a per-format budget (the activations' 8-bit quantization error).
/// </summary>
public unsafe class DotTests
{
    private static readonly DType[] QuantTypes = [DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q8_K, DType.Q4_K, DType.Q5_K, DType.Q6_K];

    public static TheoryData<DType, int> Cases()
    {
        var d = new TheoryData<DType, int>();
        foreach (var t in QuantTypes)
            foreach (int cols in t.BlockSize() == 32 ? new[] { 32, 96, 288, 416, 1536 } : new[] { 256, 768, 2304 })
                d.Add(t, cols);
        return d;
    }

    private static (WeightMatrix w, float[] x, byte[] actMem) Setup(DType t, int rows, int cols, int seed)
    {
        var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, seed, 0.05f), rows, cols);
        var x = TestData.Gaussian(cols, seed + 1);
        return (w, x, new byte[ActQ8.BytesFor(cols) + 64]);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_path_matches_the_reference_on_identical_inputs(DType t, int cols)
    {
        var (w, x, _) = Setup(t, 5, cols, seed: cols + (int)t);
        using var _w = w;
        // Integer sums are exact in every body; only float accumulation order differs.
        KernelCheck.EveryDotMatchesReference(w, x, (r, expect) => 1e-5f * (Math.Abs(expect) + 1e-3f * cols));
    }

    /// <summary>Q4_0 blocks whose half scale is zero, subnormal or negative, on every path (the AVX-512 bodies convert
    /// halves with bit tricks), plus the 512-bit body that VBMI machines no longer dispatch to.</summary>
    [Theory]
    [InlineData(416)]
    [InlineData(1536)]
    public void Q4_0_special_scales_match_the_reference(int cols)
    {
        var data = TestData.Gaussian(3 * cols, cols, 0.05f);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < cols; c++)
            {
                int block = c / 32;
                if (block % 5 == 0) data[r * cols + c] = 0;                 // d = 0
                else if (block % 5 == 1) data[r * cols + c] *= 1e-4f;      // |d| below the smallest normal half
            }
        using var w = TestData.Matrix(DType.Q4_0, data, 3, cols);
        var x = TestData.Gaussian(cols, cols + 7);
        var mem = new byte[ActQ8.BytesFor(cols) + 64];
        fixed (byte* m = mem)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)m + 63) & ~63), cols);
            ActQ8.QuantizeFor(DType.Q4_0, px, &a);
            var reference = Gemv.QuantDotReference(DType.Q4_0);
            var bodies = new List<(string, nint)>();
            foreach (var path in KernelInfo.Available) bodies.Add((KernelInfo.Name(path), (nint)Gemv.QuantDot(DType.Q4_0, path)));
            if (KernelInfo.Available.Contains(KernelPath.Avx512)) bodies.Add(("avx512 (gather)", (nint)(delegate*<byte*, ActQ8*, float>)&DeepSeekCpu.Kernels.X86.DotX86.Q4_0Avx512));
            for (int r = 0; r < 3; r++)
                foreach (var (name, f) in bodies)
                {
                    var dot = (delegate*<byte*, ActQ8*, float>)f;
                    float expect = reference(w.Row(r), &a), got = dot(w.Row(r), &a);
                    float tol = 1e-5f * (Math.Abs(expect) + 1e-3f * cols);
                    Assert.True(Math.Abs(expect - got) <= tol, $"{name} cols {cols} row {r}: {got} vs reference {expect}");
                }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantized_dot_is_close_to_the_f32_dot(DType t, int cols)
    {
        var (w, x, mem) = Setup(t, 4, cols, seed: 3 * cols + (int)t);
        using var _ = w;
        var deq = Dequantize.Matrix(w);
        fixed (byte* m = mem)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)m + 63) & ~63), cols);
            ActQ8.QuantizeFor(t, px, &a);
            var dot = Gemv.QuantDot(t, KernelInfo.Path);
            for (int r = 0; r < w.Rows; r++)
            {
                double exact = 0, wn = 0, xn = 0;
                for (int c = 0; c < cols; c++) { exact += (double)deq[r * cols + c] * x[c]; wn += deq[r * cols + c] * (double)deq[r * cols + c]; xn += x[c] * (double)x[c]; }
                // 8-bit activations: rounding error per element is uniform within ±d/2, d = block amax/127 (≈ 0.1σ
                // with outliers), so the error sum has sd ≈ 0.03·|w|·|x|/√cols; the budget is 5 sd.
                double budget = 0.15 * Math.Sqrt(wn * xn / cols) + 1e-6;
                double got = dot(w.Row(r), &a);
                Assert.True(Math.Abs(got - exact) <= budget, $"{t} cols {cols} row {r}: {got} vs f32 {exact} (budget {budget})");
            }
        }
    }
}

/// <summary>The SIMD activation quantizer writes exactly the bytes and scales of its scalar specification.</summary>
public unsafe class ActivationQuantizationTests
{
    [Theory]
    [InlineData(32)]
    [InlineData(288)]
    [InlineData(1536)]
    public void Simd_Q8_0_activations_equal_the_scalar_ones(int cols)
    {
        var x = TestData.Gaussian(cols, cols);
        x[5] = 0.5f * (x[0] == 0 ? 1 : x[0]);                 // a few exact halves after scaling are likely anyway
        var m1 = new byte[ActQ8.BytesFor(cols) + 64];
        var m2 = new byte[ActQ8.BytesFor(cols) + 64];
        fixed (byte* p1 = m1)
        fixed (byte* p2 = m2)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)p1 + 63) & ~63), cols);
            var b = ActQ8.At((byte*)(((nint)p2 + 63) & ~63), cols);
            ActQ8.QuantizeQ8_0(px, &a);
            ActQ8.QuantizeQ8_0Scalar(px, &b);
            Assert.True(new ReadOnlySpan<sbyte>(a.Q, cols).SequenceEqual(new ReadOnlySpan<sbyte>(b.Q, cols)));
            Assert.True(new ReadOnlySpan<float>(a.D, cols / 32).SequenceEqual(new ReadOnlySpan<float>(b.D, cols / 32)));
            for (int i = 0; i < cols / 32; i++) Assert.Equal(b.S[i], a.S[i], 5);
        }
    }
}

public unsafe class ActivationQuantizationQ8KTests
{
    [Theory]
    [InlineData(256)]
    [InlineData(1536)]
    public void Simd_Q8_K_activations_equal_the_scalar_ones(int cols)
    {
        var x = TestData.Gaussian(cols, cols + 1);
        x[300 % cols] = -x.Max(Math.Abs);                      // a negative extreme somewhere
        var m1 = new byte[ActQ8.BytesFor(cols) + 64];
        var m2 = new byte[ActQ8.BytesFor(cols) + 64];
        fixed (byte* p1 = m1)
        fixed (byte* p2 = m2)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)p1 + 63) & ~63), cols);
            var b = ActQ8.At((byte*)(((nint)p2 + 63) & ~63), cols);
            ActQ8.QuantizeQ8_K(px, &a);
            ActQ8.QuantizeQ8_KScalar(px, &b);
            Assert.True(new ReadOnlySpan<sbyte>(a.Q, cols).SequenceEqual(new ReadOnlySpan<sbyte>(b.Q, cols)));
            Assert.True(new ReadOnlySpan<float>(a.D, cols / 256).SequenceEqual(new ReadOnlySpan<float>(b.D, cols / 256)));
            Assert.True(new ReadOnlySpan<short>(a.BSums, cols / 16).SequenceEqual(new ReadOnlySpan<short>(b.BSums, cols / 16)));
        }
    }
}
