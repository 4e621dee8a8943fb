using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): the scalar dequantization against outputs of
/// ggml's own dequantize_row_iq* (an independent implementation, Data/ggml), every dot body against the
/// scalar reference dot on random valid blocks, the reference dot against the dequantized row, and MatMul (decode and
/// prompt routes) against a float64 product, on every path this machine has.
/// </summary>
public unsafe class IQuantTests
{
    private static readonly DType[] Types = [DType.IQ2_XXS, DType.IQ2_XS, DType.IQ2_S, DType.IQ3_XXS, DType.IQ3_S, DType.IQ1_S, DType.IQ1_M];

    public static TheoryData<DType> AllTypes() => new(Types);

    public static TheoryData<DType, int> Cases()
    {
        var d = new TheoryData<DType, int>();
        foreach (var t in Types)
            foreach (int cols in new[] { 256, 768, 2304 }) d.Add(t, cols);
        return d;
    }

    [Fact]
    public void Block_sizes_match_ggml_static_asserts()
    {
        Assert.Equal(DType.IQ2_XXS.BlockBytes(), sizeof(BlockIQ2_XXS));
        Assert.Equal(DType.IQ2_XS.BlockBytes(), sizeof(BlockIQ2_XS));
        Assert.Equal(DType.IQ2_S.BlockBytes(), sizeof(BlockIQ2_S));
        Assert.Equal(DType.IQ3_XXS.BlockBytes(), sizeof(BlockIQ3_XXS));
        Assert.Equal(DType.IQ3_S.BlockBytes(), sizeof(BlockIQ3_S));
        Assert.Equal(DType.IQ1_S.BlockBytes(), sizeof(BlockIQ1_S));
        Assert.Equal(DType.IQ1_M.BlockBytes(), sizeof(BlockIQ1_M));
        // ggml-common.h: 2 + QK_K/4, 2 + QK_K/4 + QK_K/32, 2 + QK_K/4 + QK_K/16, 2 + 3·QK_K/8, 2 + 13·QK_K/32 + QK_K/64,
        // 2 + QK_K/8 + QK_K/16, QK_K/8 + QK_K/16 + QK_K/32
        Assert.Equal([66, 74, 82, 98, 110, 50, 56], Types.Select(t => t.BlockBytes()));
    }

    /// <summary>Blocks whose grid indices sweep every entry of the type's grid, dequantized by ggml's C code: our
    /// specification and the SIMD row decode (WeightDecode's route) must reproduce every float bit for bit.</summary>
    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Dequantize_equals_ggml_bit_for_bit(DType t)
    {
        string name = t.ToString().ToLowerInvariant();
        var blocks = GgmlReferenceTests.Resource(name + ".blocks");
        var expect = MemoryMarshal.Cast<byte, float>(GgmlReferenceTests.Resource(name + ".dequant.f32")).ToArray();
        int nb = blocks.Length / t.BlockBytes();
        Assert.Equal(nb * 256, expect.Length);
        var y = new float[nb * 256];
        var fast = new float[nb * 256];
        fixed (byte* p = blocks)
        fixed (float* pf = fast)
        {
            Dequantize.Row(t, p, y);
            IQuantDecode.Floats(t, p, nb, pf);
        }
        for (int i = 0; i < y.Length; i++)
        {
            Assert.True(BitConverter.SingleToInt32Bits(expect[i]) == BitConverter.SingleToInt32Bits(y[i]), $"{t} element {i}: {y[i]} vs ggml {expect[i]}");
            Assert.True(BitConverter.SingleToInt32Bits(expect[i]) == BitConverter.SingleToInt32Bits(fast[i]), $"{t} decode element {i}: {fast[i]} vs ggml {expect[i]}");
        }
    }

    /// <summary>A rows × cols matrix of random valid blocks (elements of RMS 0.05).</summary>
    internal static WeightMatrix RandomMatrix(DType t, int rows, int cols, ulong seed)
    {
        long bytes = t.ByteCount((long)rows * cols);
        var buf = new NativeBuffer(bytes);
        ulong state = seed | 1;
        IQuantRandom.Fill(t, new Span<byte>(buf.Pointer, (int)bytes), ref state, 0.05f);
        return new WeightMatrix("test-" + t, t, rows, cols, buf.Pointer, null, buf);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_path_matches_the_reference_on_identical_inputs(DType t, int cols)
    {
        using var w = RandomMatrix(t, 5, cols, (ulong)(cols + (int)t));
        var x = TestData.Gaussian(cols, cols + 1);
        // Integer sums are exact in every body; only float accumulation order differs.
        KernelCheck.EveryDotMatchesReference(w, x, (r, expect) => 1e-5f * (Math.Abs(expect) + 1e-3f * cols));
        // The reference dot's integer form equals the dequantized row times the dequantized activations.
        var (mem, a) = KernelCheck.Activations(t, x);
        var reference = Gemv.QuantDotReference(t);
        var row = new float[cols];
        for (int r = 0; r < w.Rows; r++)
        {
            Dequantize.RowOf(w, r, row);
            double exact = 0, norm = 0;
            for (int c = 0; c < cols; c++)
            {
                double p = (double)row[c] * a.Q[c] * a.D[c / 256];
                exact += p; norm += Math.Abs(p);
            }
            float got = reference(w.Row(r), &a);
            Assert.True(Math.Abs(got - exact) <= 1e-6 * norm + 1e-9, $"{t} cols {cols} row {r}: reference dot {got} vs dequantized {exact}");
        }
        GC.KeepAlive(mem);
    }

    /// <summary>MatMul on every path, decode (GEMV) and prompt (n = 37: the float GEMM over WeightDecode tiles) routes,
    /// against float64 products of the dequantized weights, with MatMulTests' budgets.</summary>
    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Multiply_matches_the_float_reference_on_every_path(DType t)
    {
        using var w = RandomMatrix(t, 19, 768, 7);
        KernelCheck.EveryPathMultipliesLikeTheFloatReference(w, [1, 3, 37], n => n);
    }
}
