using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Block scales stored as halves: the fast conversions equal the runtime's Half → float for every finite half, and
/// every quantized dot body agrees with the scalar reference when block scales are zero or subnormal (the K-quants'
/// super-block d = largest sub-block scale / 63 is often below 2^-14 in real and synthetic weights).
/// </summary>
public unsafe class HalfScaleTests
{
    [Fact]
    public void HalfBits_equals_the_runtime_conversion_for_every_finite_half()
    {
        for (int i = 0; i < 65536; i++)
        {
            var h = BitConverter.UInt16BitsToHalf((ushort)i);
            if (!Half.IsFinite(h)) continue;
            Assert.Equal(BitConverter.SingleToUInt32Bits((float)h), BitConverter.SingleToUInt32Bits(HalfBits.ToFloat(h)));
        }
    }

    public static TheoryData<DType, int> Cases()
    {
        var d = new TheoryData<DType, int>();
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0 })
            foreach (int cols in new[] { 96, 1536 }) d.Add(t, cols);
        foreach (var t in new[] { DType.Q4_K, DType.Q5_K, DType.Q6_K })
            foreach (int cols in new[] { 256, 2304 }) d.Add(t, cols);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_path_matches_the_reference_with_zero_and_subnormal_block_scales(DType t, int cols)
    {
        const int rows = 4;
        int bs = t.BlockSize();
        var data = TestData.Gaussian(rows * cols, cols + (int)t, 0.05f);
        // row 0: every block tiny; row 1: blocks alternate zero / tiny / normal; rows 2-3: normal
        for (int c = 0; c < cols; c++)
        {
            data[c] *= 1e-3f;
            int block = c / bs;
            data[cols + c] *= (block % 3) switch { 0 => 0f, 1 => 1e-3f, _ => 1f };
        }
        using var w = TestData.Matrix(t, data, rows, cols);
        int dOffset = t == DType.Q6_K ? 208 : 0;          // ggml block layouts: d first, except Q6_K (last)
        Assert.True(Enumerable.Range(0, cols / bs).Any(b => IsSubnormal(*(Half*)(w.Row(0) + (long)b * t.BlockBytes() + dOffset))),
            $"{t}: the test data must produce a subnormal block scale");

        var x = TestData.Gaussian(cols, cols + 11);
        KernelCheck.EveryDotMatchesReference(w, x, (r, expect) => 1e-5f * Math.Abs(expect) + 1e-6f * (float)Math.Sqrt(cols) * RowScale(data, r, cols));
    }

    private static bool IsSubnormal(Half h) => h != Half.Zero && Half.IsSubnormal(h);

    private static float RowScale(float[] data, int r, int cols)
    {
        float m = 0;
        for (int c = 0; c < cols; c++) m = Math.Max(m, Math.Abs(data[r * cols + c]));
        return m;
    }
}
