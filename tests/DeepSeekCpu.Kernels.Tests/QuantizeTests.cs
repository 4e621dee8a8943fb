using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>Reference quantizers: known bytes for simple inputs, and quantize → dequantize within per-format budgets.</summary>
public unsafe class QuantizeTests
{
    public static TheoryData<DType, double> Budgets => new()
    {
        // Relative RMS error on Gaussian data with outliers; a few % above what the reference quantizers achieve.
        { DType.F16, 0.0005 }, { DType.BF16, 0.004 },
        { DType.Q8_0, 0.008 }, { DType.Q8_K, 0.015 },
        { DType.Q6_K, 0.025 }, { DType.Q5_0, 0.06 }, { DType.Q5_K, 0.045 },
        { DType.Q4_0, 0.12 }, { DType.Q4_1, 0.11 }, { DType.Q4_K, 0.09 },
    };

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Round_trip_error_is_within_budget(DType type, double budget)
    {
        const int n = 4096;
        var x = TestData.Gaussian(n, seed: 7);
        var bytes = new byte[type.ByteCount(n)];
        Quantize.Row(type, x, bytes);
        var y = new float[n];
        fixed (byte* p = bytes) Dequantize.Row(type, p, y);
        double err = 0, rms = 0;
        for (int i = 0; i < n; i++) { err += (x[i] - y[i]) * (double)(x[i] - y[i]); rms += (double)x[i] * x[i]; }
        double rel = Math.Sqrt(err / rms);
        Assert.True(rel < budget, $"{type}: relative RMS error {rel:F5} exceeds {budget}");
        Assert.True(rel > budget / 20, $"{type}: relative RMS error {rel:F6} is implausibly small for this format");
    }

    [Fact]
    public void Q8_0_known_bytes()
    {
        // amax 127 → d = 1: quants are the values themselves (roundf, half away from zero).
        var x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = i * 4 - 64 + 0.5f;
        x[31] = 127;
        var b = new byte[34];
        Quantize.Row(DType.Q8_0, x, b);
        Assert.Equal((ushort)0x3C00, BitConverter.ToUInt16(b, 0));
        for (int i = 0; i < 31; i++) Assert.Equal((sbyte)(i * 4 - 64 + (i * 4 - 64 >= 0 ? 1 : 0)), (sbyte)b[2 + i]);
        Assert.Equal(127, (sbyte)b[33]);
    }

    [Fact]
    public void Q4_0_known_bytes()
    {
        // max by magnitude is -8 → d = 1, q = x + 8 (truncating x/d + 8.5).
        var x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = (i % 16) - 8;
        var b = new byte[18];
        Quantize.Row(DType.Q4_0, x, b);
        Assert.Equal((ushort)0x3C00, BitConverter.ToUInt16(b, 0));
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(j | (j << 4)), b[2 + j]);
    }

    [Fact]
    public void Zero_rows_quantize_to_zero()
    {
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q8_K, DType.Q4_K, DType.Q5_K, DType.Q6_K })
        {
            var x = new float[256];
            var b = new byte[t.ByteCount(256)];
            Quantize.Row(t, x, b);
            var y = new float[256];
            fixed (byte* p = b) Dequantize.Row(t, p, y);
            Assert.All(y, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void Q8_K_block_sums_and_scale()
    {
        var x = TestData.Gaussian(256, seed: 3);
        BlockQ8_K b;
        fixed (float* p = x) Quantize.Q8_K(p, &b);
        for (int j = 0; j < 16; j++)
        {
            int s = 0;
            for (int i = 0; i < 16; i++) s += b.Qs[16 * j + i];
            Assert.Equal(s, b.BSums[j]);
        }
        float amax = x.Max(Math.Abs);
        Assert.Equal(amax / 127f, Math.Abs(b.D), 5);
    }

    [Fact]
    public void Matrix_quantizes_every_row_like_Row_and_owns_its_memory()
    {
        int rows = 37, cols = 512;
        var data = TestData.Gaussian(rows * cols, seed: 11);
        using var src = TestData.F32Matrix(data, rows, cols);
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K, DType.BF16 })
        {
            var q = Quantize.Matrix(src, t);
            Assert.Equal(t, q.Type);
            Assert.IsType<NativeBuffer>(q.Owner);
            Assert.Equal(0, (long)q.Data % 64);
            var expect = new byte[t.ByteCount(cols)];
            for (int r = 0; r < rows; r++)
            {
                Quantize.Row(t, data.AsSpan(r * cols, cols), expect);
                Assert.True(expect.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(q.Row(r), expect.Length)), $"{t} row {r}");
            }
            q.Dispose();
            Assert.Throws<ObjectDisposedException>(() => ((NativeBuffer)q.Owner!).Span.Length);
        }
    }
}
