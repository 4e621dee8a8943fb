using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Q2_K, Q3_K, Q5_1, IQ4_NL and IQ4_XS: block layouts, every dot body this machine has against the scalar reference
/// on random valid blocks and on quantizer output (lengths that are not a multiple of any body's unroll), the
/// quantized dot against the f32 dot, quantize → dequantize budgets, and the GEMM path.
/// </summary>
public unsafe class KQuantsTests
{
    public static readonly DType[] Types = [DType.Q2_K, DType.Q3_K, DType.Q5_1, DType.IQ4_NL, DType.IQ4_XS];

    /// <summary>Offsets of the ggml_half fields of each block (ggml-common.h); every other byte may be anything.</summary>
    private static int[] HalfOffsets(DType t) => t switch
    {
        DType.Q2_K => [80, 82],
        DType.Q3_K => [108],
        DType.Q5_1 or DType.Q4_K => [0, 2],   // Q4_K: d, dmin
        _ => [0],   // IQ4_NL, IQ4_XS
    };

    /// <summary>Random valid blocks: random bytes, each half scale a random ±[0.002, 0.052].</summary>
    internal static WeightMatrix RandomBlocks(DType t, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        long bytes = t.ByteCount((long)rows * cols);
        var buf = new NativeBuffer(bytes);
        var span = new Span<byte>(buf.Pointer, (int)bytes);
        rng.NextBytes(span);
        for (int b = 0; b < bytes / t.BlockBytes(); b++)
            foreach (int off in HalfOffsets(t))
            {
                var h = (Half)((0.002 + 0.05 * rng.NextDouble()) * (rng.Next(2) == 0 ? -1 : 1));
                MemoryMarshal.Write(span.Slice(b * t.BlockBytes() + off, 2), in h);
            }
        return new WeightMatrix("random-" + t, t, rows, cols, buf.Pointer, null, buf);
    }

    public static TheoryData<DType, int> Cases()
    {
        var d = new TheoryData<DType, int>();
        foreach (var t in Types)
            foreach (int cols in t.BlockSize() == 32 ? new[] { 32, 64, 96, 416, 1568 } : new[] { 256, 512, 768, 2304 })
                d.Add(t, cols);
        return d;
    }

    [Fact]
    public void Sizes_and_offsets_match_ggml()
    {
        Assert.Equal(24, sizeof(BlockQ5_1)); Assert.Equal(DType.Q5_1.BlockBytes(), sizeof(BlockQ5_1));
        Assert.Equal(84, sizeof(BlockQ2_K)); Assert.Equal(DType.Q2_K.BlockBytes(), sizeof(BlockQ2_K));
        Assert.Equal(110, sizeof(BlockQ3_K)); Assert.Equal(DType.Q3_K.BlockBytes(), sizeof(BlockQ3_K));
        Assert.Equal(18, sizeof(BlockIQ4_NL)); Assert.Equal(DType.IQ4_NL.BlockBytes(), sizeof(BlockIQ4_NL));
        Assert.Equal(136, sizeof(BlockIQ4_XS)); Assert.Equal(DType.IQ4_XS.BlockBytes(), sizeof(BlockIQ4_XS));
        Assert.Equal(4, (int)Marshal.OffsetOf<BlockQ5_1>(nameof(BlockQ5_1.Qh)));
        Assert.Equal(8, (int)Marshal.OffsetOf<BlockQ5_1>(nameof(BlockQ5_1.Qs)));
        Assert.Equal(16, (int)Marshal.OffsetOf<BlockQ2_K>(nameof(BlockQ2_K.Qs)));
        Assert.Equal(80, (int)Marshal.OffsetOf<BlockQ2_K>(nameof(BlockQ2_K.D)));
        Assert.Equal(32, (int)Marshal.OffsetOf<BlockQ3_K>(nameof(BlockQ3_K.Qs)));
        Assert.Equal(96, (int)Marshal.OffsetOf<BlockQ3_K>(nameof(BlockQ3_K.Scales)));
        Assert.Equal(108, (int)Marshal.OffsetOf<BlockQ3_K>(nameof(BlockQ3_K.D)));
        Assert.Equal(2, (int)Marshal.OffsetOf<BlockIQ4_XS>(nameof(BlockIQ4_XS.ScalesH)));
        Assert.Equal(4, (int)Marshal.OffsetOf<BlockIQ4_XS>(nameof(BlockIQ4_XS.ScalesL)));
        Assert.Equal(8, (int)Marshal.OffsetOf<BlockIQ4_XS>(nameof(BlockIQ4_XS.Qs)));
        Assert.Equal(20, (int)DType.IQ4_NL);   // ggml_type ids (ggml.h)
        Assert.Equal(23, (int)DType.IQ4_XS);
    }

    /// <summary>Each body against the reference on random blocks, with ordinary activations and with activations
    /// that are all ±127 (the largest int16 pair sums the bodies form).</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_path_matches_the_reference_on_random_blocks(DType t, int cols)
    {
        using var w = RandomBlocks(t, 5, cols, seed: cols * 31 + (int)t);
        var gaussian = TestData.Gaussian(cols, cols + 5);
        var rng = new Random(cols);
        var extreme = Enumerable.Range(0, cols).Select(_ => rng.Next(2) == 0 ? -1f : 1f).ToArray();
        foreach (var x in new[] { gaussian, extreme })
            AllPathsMatchReference(w, x);
    }

    internal static void AllPathsMatchReference(WeightMatrix w, float[] x)
    {
        int cols = w.Cols;
        var deq = Dequantize.Matrix(w);
        // Integer sums are exact in every body; only the float accumulation order differs, whose error scales with
        // Σ|w·x| (random blocks with ±1 activations cancel to sums far below their terms).
        KernelCheck.EveryDotMatchesReference(w, x, (r, expect) =>
        {
            double absSum = 0;
            for (int c = 0; c < cols; c++) absSum += Math.Abs(deq[r * cols + c] * x[c]);
            return 1e-5 * (Math.Abs(expect) + 1e-3 * cols) + 1e-6 * absSum;
        });
    }

    /// <summary>The same on quantizer output, and the quantized dot against the f32 dot (DotTests' budget).</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantized_rows_match_the_reference_and_the_f32_dot(DType t, int cols)
    {
        var dots = new DotTests();
        dots.Every_path_matches_the_reference_on_identical_inputs(t, cols);
        dots.Quantized_dot_is_close_to_the_f32_dot(t, cols);
    }

    public static TheoryData<DType, double> Budgets => new()
    {
        // Relative RMS error of ggml's own quantizers (ours write its bytes: GgmlReferenceTests) on QuantizeTests'
        // Gaussian data with outliers, measured 0.3045 / 0.1673 / 0.0404 / 0.0855 / 0.0867 (Q2_K / Q3_K / Q5_1 / IQ4_NL / IQ4_XS); budgets a few % above.
        { DType.Q2_K, 0.32 }, { DType.Q3_K, 0.175 }, { DType.Q5_1, 0.042 }, { DType.IQ4_NL, 0.09 }, { DType.IQ4_XS, 0.09 },
    };

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Round_trip_error_is_within_budget(DType t, double budget) => new QuantizeTests().Round_trip_error_is_within_budget(t, budget);

    [Fact]
    public void Zero_rows_quantize_to_zero()
    {
        foreach (var t in Types)
        {
            var x = new float[256];
            var b = new byte[t.ByteCount(256)];
            Quantize.Row(t, x, b);
            var y = new float[256];
            fixed (byte* p = b) Dequantize.Row(t, p, y);
            Assert.All(y, v => Assert.Equal(0f, v));
        }
    }

    /// <summary>MatMulTests' check (every path, 1 to 37 tokens: GEMV and the float GEMM that these types take for
    /// prompts) on quantizer output, and the same budgets on random blocks.</summary>
    [Theory]
    [MemberData(nameof(TypeList))]
    public void MatMul_matches_the_float_reference_on_every_path(DType t)
    {
        var mm = new MatMulTests();
        if (t.BlockSize() == 32) { mm.Multiply_matches_the_float_reference_on_every_path(t, 67, 288); mm.Multiply_matches_the_float_reference_on_every_path(t, 3, 544); }
        else { mm.Multiply_matches_the_float_reference_on_every_path(t, 67, 768); mm.Multiply_matches_the_float_reference_on_every_path(t, 9, 256); }

        using var w = RandomBlocks(t, 70, 512, seed: (int)t);
        KernelCheck.EveryPathMultipliesLikeTheFloatReference(w, [1, 3, 24], n => n + (int)t);
    }

    public static TheoryData<DType> TypeList() => new(Types);
}
