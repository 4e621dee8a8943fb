using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>FP8 E4M3 (float8_e4m3fn) decoding of all 256 codes, reference and SIMD bit trick.</summary>
public unsafe class Fp8Tests
{
    /// <summary>The E4M3 definition written independently: (-1)^s · 2^(e-7) · (1 + m/8), subnormals 2^-6 · m/8, S.1111.111 NaN.</summary>
    internal static double Definition(int v)
    {
        int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
        if (e == 15 && m == 7) return double.NaN;
        double mag = e == 0 ? Math.ScaleB(m / 8.0, -6) : Math.ScaleB(1 + m / 8.0, e - 7);
        return s == 1 ? -mag : mag;
    }

    [Fact]
    public void Reference_decodes_all_256_codes()
    {
        for (int v = 0; v < 256; v++)
        {
            double expect = Definition(v);
            float got = Dequantize.Fp8E4M3ToFloat((byte)v);
            if (double.IsNaN(expect)) Assert.True(float.IsNaN(got), $"0x{v:X2}");
            else Assert.Equal(expect, (double)got);
        }
        Assert.Equal(448f, Dequantize.Fp8E4M3ToFloat(0x7E));
        Assert.Equal(-448f, Dequantize.Fp8E4M3ToFloat(0xFE));
        Assert.Equal(1f, Dequantize.Fp8E4M3ToFloat(0x38));
        Assert.Equal(MathF.ScaleB(1, -9), Dequantize.Fp8E4M3ToFloat(0x01));
        Assert.True(float.IsNegative(Dequantize.Fp8E4M3ToFloat(0x80)));
    }

    [Fact]
    public void Simd_bit_trick_decodes_all_256_codes()
    {
        var codes = new byte[256];
        for (int i = 0; i < 256; i++) codes[i] = (byte)i;
        var got = new float[256];
        fixed (byte* c = codes)
        fixed (float* g = got)
            for (int i = 0; i < 256; i += 16) FloatDot.DecodeFp8x16(c + i, g + i);
        for (int v = 0; v < 256; v++)
        {
            double expect = Definition(v);
            if (double.IsNaN(expect)) Assert.True(float.IsNaN(got[v]), $"0x{v:X2}");
            else Assert.Equal(BitConverter.SingleToInt32Bits((float)expect), BitConverter.SingleToInt32Bits(got[v]));
        }
    }
}
