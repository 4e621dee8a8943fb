using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The Q8_0 GEMM's float steps, pinned bit for bit: whatever its register blocking (rows and tokens per micro-kernel
/// call, panels, how the tile stores d_w and the sums' start values), every C[token, row] is the float sum, in block
/// order from 0, of float(Σ q_w·q_x)·(d_x·d_w) with one rounding per FMA: the order <see cref="GemmQ8"/>'s summary
/// states, written here as scalar code on the scalar quantizer's bytes (<see cref="ActQ8.QuantizeQ8_0Scalar"/>, which
/// the activation packer equals byte for byte). Logits of Q8_0 models stay the same across blockings only while this holds.
/// </summary>
public unsafe class GemmQ8Tests
{
    /// <summary>
    /// 67 rows (a partial row block and a partial group of 16), 544 columns (a partial 256-column slice), token counts
    /// that are not multiples of the 8- or 16-token steps, some d_w negative or subnormal (the tile converts them four at
    /// a time), from the stored rows and from the interleaved copy.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(19)]
    [InlineData(37)]
    public void Q8_0_gemm_sums_the_blocks_in_order_bit_for_bit(int n)
    {
        const int rows = 67, cols = 544, nb = cols / 32;
        using var w = TestData.Matrix(DType.Q8_0, TestData.Gaussian(rows * cols, 41, 0.05f), rows, cols);
        for (int r = 0; r < rows; r++)
        {
            var blocks = (BlockQ8_0*)w.Row(r);
            if (r % 5 == 1) blocks[r % nb].D = BitConverter.UInt16BitsToHalf((ushort)(0x0001 + r));   // subnormal
            if (r % 7 == 2) blocks[(r + 3) % nb].D = -blocks[(r + 3) % nb].D;
        }
        var x = TestData.Gaussian(n * cols, 43 + n);
        var expect = Expected(w, x, n);
        ForEachQ8Gemm(w, x, n, (name, interleaved, y) =>
        {
            for (int i = 0; i < y.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(y[i]) == BitConverter.SingleToInt32Bits(expect[i]),
                    $"{name} interleaved={interleaved} n={n} token {i / rows} row {i % rows}: {y[i]:R} vs {expect[i]:R} summed in block order");
        });
    }

    /// <summary>
    /// Y[n, rows] from every GemmQ8 body this machine runs (AVX-VNNI, NEON DotProd), over the stored rows and then with
    /// the interleaved copy attached, each handed to <paramref name="check"/> with the body's name.
    /// </summary>
    internal static void ForEachQ8Gemm(WeightMatrix w, float[] x, int n, Action<string, bool, float[]> check)
    {
        var kernels = new List<(string Name, nint Run)>();
        if (System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) kernels.Add(("q8-vnni", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmQ8.Vnni));
        if (KernelInfo.Available.Contains(KernelPath.NeonDp)) kernels.Add(("q8-neon-dp", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmQ8.Neon));
        foreach (bool interleaved in new[] { false, true })
        {
            if (interleaved) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            foreach (var (name, run) in kernels)
            {
                var y = new float[n * w.Rows];
                fixed (float* px = x, py = y) ((delegate*<WeightMatrix, float*, float*, int, void>)run)(w, px, py, n);
                check(name, interleaved, y);
            }
        }
    }

    /// <summary>y[t, r] = Σ_b in order: fma(float(Σ_k q_w·q_x), d_x·d_w, sum), from +0.</summary>
    private static float[] Expected(WeightMatrix w, float[] x, int n)
    {
        int rows = w.Rows, cols = w.Cols, nb = cols / 32;
        var y = new float[n * rows];
        var mem = new byte[ActQ8.BytesFor(cols) + 64];
        fixed (float* px = x)
        fixed (byte* am = mem)
        {
            var a = ActQ8.At((byte*)(((nint)am + 63) & ~63), cols);
            a.Nib = null;   // only the Q8_0 bytes and scales are read
            for (int t = 0; t < n; t++)
            {
                ActQ8.QuantizeQ8_0Scalar(px + (long)t * cols, &a);
                for (int r = 0; r < rows; r++)
                {
                    var blocks = (BlockQ8_0*)w.Row(r);
                    float sum = 0;
                    for (int b = 0; b < nb; b++)
                    {
                        int s = 0;
                        for (int k = 0; k < 32; k++) s += blocks[b].Qs[k] * a.Q[32 * b + k];
                        sum = MathF.FusedMultiplyAdd(s, a.D[b] * (float)blocks[b].D, sum);
                    }
                    y[t * rows + r] = sum;
                }
            }
        }
        return y;
    }
}
