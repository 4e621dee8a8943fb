using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Independent checks of the Q2_K, Q3_K, Q5_1, IQ4_NL, IQ4_XS and MXFP4 specifications: the outputs of ggml's own C functions
/// (dequantize_row_*, and its quantizers) over fixed inputs, produced outside this repo (Data/ggml/README.md).
/// </summary>
public unsafe class GgmlReferenceTests
{
    public static TheoryData<DType> Types() => [DType.Q2_K, DType.Q3_K, DType.Q5_1, DType.IQ4_NL, DType.IQ4_XS, DType.MXFP4];

    internal static byte[] Resource(string name)
    {
        using var s = typeof(GgmlReferenceTests).Assembly.GetManifestResourceStream("ggml/" + name)
            ?? throw new FileNotFoundException($"embedded resource ggml/{name}");
        var bytes = new byte[s.Length];
        s.ReadExactly(bytes);
        return bytes;
    }

    private static float[] Floats(string name) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Resource(name)).ToArray();

    private static string FileName(DType t) => t.ToString().ToLowerInvariant();

    [Theory]
    [MemberData(nameof(Types))]
    public void Dequantization_equals_ggml_bit_for_bit(DType t)
    {
        var blocks = Resource(FileName(t) + ".blocks");
        var expect = Floats(FileName(t) + ".dequant.f32");
        Assert.Equal(t.ByteCount(expect.Length), blocks.Length);
        var got = new float[expect.Length];
        fixed (byte* p = blocks) Dequantize.Row(t, p, got);
        for (int i = 0; i < expect.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expect[i]) == BitConverter.SingleToInt32Bits(got[i]), $"{t} element {i}: {got[i]} vs ggml {expect[i]}");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Quantizer_writes_the_bytes_ggml_writes(DType t)
    {
        var input = Floats("input.f32");
        var expect = Resource(FileName(t) + ".quant");
        var got = new byte[t.ByteCount(input.Length)];
        Quantize.Row(t, input, got);
        int per = t.BlockBytes();
        for (int i = 0; i < expect.Length; i++)
            Assert.True(expect[i] == got[i], $"{t} block {i / per} byte {i % per}: {got[i]} vs ggml {expect[i]}");
    }
}
