using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Every float-format dot body on every path this machine has, at every length 0..257 (TensorPrimitives' sweep: each
/// unrolled loop, vector tail and scalar tail, and FP8's partial 128-column scale blocks), against a float64 dot of
/// the values decoded by the test's own definitions (Half, the upper half of a float32, Fp8Tests.Definition).
/// </summary>
public unsafe class FloatDotTests
{
    public static TheoryData<DType> Formats() => new(DType.F32, DType.F16, DType.BF16, DType.F8_E4M3);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_length_from_0_to_257_matches_the_float64_dot_on_every_path(DType t)
    {
        const int max = 257;
        var rng = new Random((int)t);
        var x = TestData.Gaussian(max, 5 + (int)t);
        var values = TestData.Gaussian(max, 7 + (int)t, 0.5f);
        var bytes = new byte[4 * max];
        var decoded = new double[max];
        float[] scales = [0.75f, -1.5f, 2f];   // FP8: one per 128 columns
        for (int i = 0; i < max; i++)
        {
            switch (t)
            {
                case DType.F32: BitConverter.TryWriteBytes(bytes.AsSpan(4 * i), values[i]); decoded[i] = values[i]; break;
                case DType.F16: var h = (Half)values[i]; BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), h); decoded[i] = (double)h; break;
                case DType.BF16:
                    ushort b = (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16);
                    BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), b);
                    decoded[i] = BitConverter.UInt32BitsToSingle((uint)b << 16);
                    break;
                default:
                    byte code = (byte)rng.Next(256);
                    if ((code & 0x7F) == 0x7F) code ^= 1;   // not NaN
                    bytes[i] = code;
                    decoded[i] = Fp8Tests.Definition(code) * scales[i / 128];
                    break;
            }
        }
        fixed (byte* pw = bytes)
        fixed (float* px = x, ps = scales)
        {
            foreach (var path in KernelInfo.Available)
            {
                var dot = Gemv.FloatDotFor(t, path);
                for (int len = 0; len <= max; len++)
                {
                    double expect = 0, scale = 0;
                    for (int i = 0; i < len; i++) { expect += decoded[i] * x[i]; scale += Math.Abs(decoded[i] * x[i]); }
                    float got = dot(pw, px, len, ps);
                    double tol = 1e-6 * Math.Sqrt(len + 1) * scale;
                    Assert.True(Math.Abs(got - expect) <= tol, $"{t} {KernelInfo.Name(path)} length {len}: {got} vs {expect} (tolerance {tol:G3})");
                }
            }
        }
    }

    [Fact]
    public void Half_decoding_equals_the_runtime_conversion_for_all_65536_codes_at_every_width()
    {
        var codes = new ushort[65536];
        for (int i = 0; i < codes.Length; i++) codes[i] = (ushort)i;
        var wide = new float[65536];
        fixed (ushort* c = codes)
        fixed (float* d = wide)
        {
            FloatDot.Widen<FloatDot.F16Decode>((byte*)c, d, codes.Length);
            for (int i = 0; i < codes.Length; i++)
            {
                uint expect = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(codes[i]));
                Assert.True(expect == BitConverter.SingleToUInt32Bits(wide[i]), $"half 0x{i:X4}: 0x{BitConverter.SingleToUInt32Bits(wide[i]):X8} vs 0x{expect:X8}");
                if (i % 16 != 0) continue;
                // each width's decoder on its own, whether or not it is the one Widen picked here
                var v128 = FloatDot.F16Decode.Decode<FloatDot.W128, System.Runtime.Intrinsics.Vector128<float>>((byte*)(c + i), 0);
                var v256 = FloatDot.F16Decode.Decode<FloatDot.W256, System.Runtime.Intrinsics.Vector256<float>>((byte*)(c + i), 0);
                var v512 = FloatDot.F16Decode.Decode<FloatDot.W512, System.Runtime.Intrinsics.Vector512<float>>((byte*)(c + i), 0);
                for (int k = 0; k < 16; k++)
                {
                    uint e = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(codes[i + k]));
                    if (k < 4) Assert.Equal(e, BitConverter.SingleToUInt32Bits(v128[k]));
                    if (k < 8) Assert.Equal(e, BitConverter.SingleToUInt32Bits(v256[k]));
                    Assert.Equal(e, BitConverter.SingleToUInt32Bits(v512[k]));
                }
            }
            // shuffled, so that vectors mix normal halves with zeros, subnormals, infinities and NaNs (the decoder takes
            // its short path only for vectors of normal halves)
            new Random(11).Shuffle(codes);
            FloatDot.Widen<FloatDot.F16Decode>((byte*)c, d, codes.Length);
            for (int i = 0; i < codes.Length; i++)
            {
                uint expect = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(codes[i]));
                Assert.True(expect == BitConverter.SingleToUInt32Bits(wide[i]), $"shuffled, half 0x{codes[i]:X4}: 0x{BitConverter.SingleToUInt32Bits(wide[i]):X8} vs 0x{expect:X8}");
            }
        }
    }
}
