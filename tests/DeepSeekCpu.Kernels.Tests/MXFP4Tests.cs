using System.Runtime.InteropServices;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// MXFP4 (ggml's GGML_TYPE_MXFP4) and DeepSeek-V4's FP4 experts converted to it: the scalar specification against the
/// format's definition (OCP MX v1.0: e2m1 code × 2^(e − 127)) and against ggml's own code (GgmlReferenceTests), every
/// dot body against the specification, the quantized products against float64, and WeightMatrix.FromE2M1 against a
/// direct decode of V4's layout, on random tensors and on the V4 fixture's real expert tensors.
/// </summary>
public unsafe class MXFP4Tests
{
    /// <summary>The e2m1 values of codes 0..15 (bit 3 the sign), as the V4 fixture's README and the MX spec list them.</summary>
    private static readonly double[] E2M1 = [0, .5, 1, 1.5, 2, 3, 4, 6, -0.0, -.5, -1, -1.5, -2, -3, -4, -6];

    /// <summary>Element i of an MXFP4 block, from the definition: code = nibble i % 16 of qs (low for i &lt; 16).</summary>
    private static float Definition(byte e, byte* qs, int i) =>
        (float)(E2M1[(qs[i % 16] >> (4 * (i / 16))) & 0xF] * Math.ScaleB(1.0, e - 127));

    [Fact]
    public void Block_layout_and_type_id_match_ggml()
    {
        Assert.Equal(39, (int)DType.MXFP4);                     // GGML_TYPE_MXFP4 (ggml.h)
        Assert.Equal(32, DType.MXFP4.BlockSize());
        Assert.Equal(17, DType.MXFP4.BlockBytes());
        Assert.Equal(17, sizeof(BlockMXFP4));
        Assert.Equal(1, (int)Marshal.OffsetOf<BlockMXFP4>(nameof(BlockMXFP4.Qs)));
        Assert.True(DTypeInfo.IsKnownGguf(39));
    }

    [Fact]
    public void Half_scale_is_two_to_the_e_minus_128()
    {
        for (int e = 0; e < 256; e++)
            Assert.Equal((float)Math.ScaleB(1.0, e - 128), Mxfp4.HalfScale((byte)e));
    }

    /// <summary>Every E8M0 byte but the NaN 0xFF, every code in every position.</summary>
    [Fact]
    public void Dequantize_follows_the_format_definition()
    {
        var rng = new Random(39);
        var blocks = new BlockMXFP4[255];
        for (int b = 0; b < blocks.Length; b++)
        {
            blocks[b].E = (byte)b;
            for (int j = 0; j < 16; j++) blocks[b].Qs[j] = (byte)(b < 16 ? 16 * b + j : rng.Next(256));
        }
        var got = new float[32 * blocks.Length];
        fixed (BlockMXFP4* p = blocks)
        {
            Dequantize.Row(DType.MXFP4, (byte*)p, got);
            for (int b = 0; b < blocks.Length; b++)
                for (int i = 0; i < 32; i++)
                {
                    float expect = Definition(p[b].E, p[b].Qs, i);
                    Assert.True(expect == got[32 * b + i], $"block {b} (e {b}) element {i}: {got[32 * b + i]} vs {expect}");
                }
        }
    }

    /// <summary>Random blocks with scales 2^-10..2^0 (levels up to ±6).</summary>
    internal static WeightMatrix RandomBlocks(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        long bytes = DType.MXFP4.ByteCount((long)rows * cols);
        var buf = new NativeBuffer(bytes);
        var blocks = new Span<BlockMXFP4>(buf.Pointer, (int)(bytes / 17));
        for (int b = 0; b < blocks.Length; b++)
        {
            blocks[b].E = (byte)rng.Next(117, 128);
            for (int j = 0; j < 16; j++) blocks[b].Qs[j] = (byte)rng.Next(256);
        }
        return new WeightMatrix("random-mxfp4", DType.MXFP4, rows, cols, buf.Pointer, null, buf);
    }

    public static TheoryData<int> Widths() => [32, 64, 96, 416, 1568];

    /// <summary>Each body against the reference on random blocks (odd block counts reach the 512-bit body's tail),
    /// with Gaussian activations and with all ±1 ones (the largest pair sums), then on quantizer output.</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void Every_path_matches_the_reference(int cols)
    {
        using var w = RandomBlocks(5, cols, seed: cols);
        var rng = new Random(cols);
        var extreme = Enumerable.Range(0, cols).Select(_ => rng.Next(2) == 0 ? -1f : 1f).ToArray();
        foreach (var x in new[] { TestData.Gaussian(cols, cols + 5), extreme })
            KQuantsTests.AllPathsMatchReference(w, x);
        var dots = new DotTests();
        dots.Every_path_matches_the_reference_on_identical_inputs(DType.MXFP4, cols);
        dots.Quantized_dot_is_close_to_the_f32_dot(DType.MXFP4, cols);
    }

    // Relative RMS error of ggml's quantizer (ours writes its bytes: GgmlReferenceTests) on QuantizeTests' Gaussian data
    // with outliers, measured 0.1178; budget a few % above.
    [Fact]
    public void Round_trip_error_is_within_budget() => new QuantizeTests().Round_trip_error_is_within_budget(DType.MXFP4, 0.122);

    /// <summary>MatMulTests' check (every path, 1 to 37 tokens: the GEMV and the float GEMM of prompts) on quantizer
    /// output, and on random blocks.</summary>
    [Fact]
    public void MatMul_matches_the_float_reference_on_every_path()
    {
        var mm = new MatMulTests();
        mm.Multiply_matches_the_float_reference_on_every_path(DType.MXFP4, 67, 288);
        mm.Multiply_matches_the_float_reference_on_every_path(DType.MXFP4, 3, 544);
        using var w = RandomBlocks(70, 512, seed: 70);
        KernelCheck.EveryPathMultipliesLikeTheFloatReference(w, [1, 3, 24], n => n + 39);
    }

    // ---------- float32 activations (ActivationPrecision.Float32: DeepSeek-V4's FP4 experts) ----------

    /// <summary>Σ definition(w[r, c]) · x[c] in float64, and Σ |…| (the scale of its rounding).</summary>
    private static (double Exact, double Norm) DefinitionDot(WeightMatrix w, int r, ReadOnlySpan<float> x)
    {
        double exact = 0, norm = 0;
        var blocks = (BlockMXFP4*)w.Row(r);
        for (int c = 0; c < w.Cols; c++)
        {
            double v = Definition(blocks[c / 32].E, blocks[c / 32].Qs, c % 32) * (double)x[c];
            exact += v; norm += Math.Abs(v);
        }
        return (exact, norm);
    }

    /// <summary>float32 sums of <paramref name="cols"/> terms: a few ulps per √cols of the terms' scale. Q8_0 activations
    /// (the quantized path) miss this by two orders of magnitude.</summary>
    private static double FloatBudget(double norm, int cols) => 4e-7 * Math.Sqrt(cols) * norm + 1e-30;

    /// <summary>The float-activation specification against the format's definition in float64, and every path's
    /// body (<see cref="Gemv.FloatDotFor"/>) against both, on Gaussian and on all-±1 activations.</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void Float_activation_dot_matches_the_definition_on_every_path(int cols)
    {
        using var w = RandomBlocks(5, cols, seed: cols + 1);
        var rng = new Random(cols + 2);
        var extreme = Enumerable.Range(0, cols).Select(_ => rng.Next(2) == 0 ? -1f : 1f).ToArray();
        foreach (var x in new[] { TestData.Gaussian(cols, cols + 9), extreme })
            fixed (float* px = x)
                for (int r = 0; r < w.Rows; r++)
                {
                    var (exact, norm) = DefinitionDot(w, r, x);
                    double budget = FloatBudget(norm, cols);
                    float spec = DotReference.MXFP4F32(w.Row(r), px, cols, null);
                    Assert.True(Math.Abs(spec - exact) <= budget, $"reference cols {cols} row {r}: {spec} vs {exact}");
                    foreach (var path in KernelInfo.Available)
                    {
                        var dot = Gemv.FloatDotFor(DType.MXFP4, path);
                        Assert.True(dot != null, $"no MXFP4 float dot on {KernelInfo.Name(path)}");
                        float got = dot(w.Row(r), px, cols, null);
                        Assert.True(Math.Abs(got - exact) <= budget && Math.Abs(got - spec) <= budget,
                            $"{KernelInfo.Name(path)} cols {cols} row {r}: {got} vs reference {spec}, float64 {exact} (budget {budget:G3})");
                    }
                }
    }

    /// <summary>
    /// A matrix set to float32 activations: MatMul on every path (1 and 3 tokens: the float GEMV; 24: the float GEMM
    /// over WeightDecode) within float32 rounding of float64, so no activation was quantized; the GEMV's values are the
    /// body's own; and the same matrix left at its default still takes the Q8_0 kernels (ggml's semantics).
    /// </summary>
    [Fact]
    public void Float_activation_products_match_float64_on_every_path()
    {
        using var w = RandomBlocks(70, 512, seed: 71);
        var x = TestData.Gaussian(3 * 512, 72);
        var quantized = new float[3 * 70];
        MatMul.Multiply(w, x, quantized, 3);
        Assert.Equal(ActivationPrecision.Quantized, w.Activations);
        Assert.Same(w, w.WithFloatActivations());
        Assert.Equal(ActivationPrecision.Float32, w.Activations);
        double worstQuantized = 0;
        foreach (int n in new[] { 1, 3, 24 })
        {
            var xs = TestData.Gaussian(n * 512, 72 + n);
            if (n == 3) xs = x;
            var expect = TestData.ReferenceMatMul(w, xs, n);
            foreach (var path in KernelInfo.Available)
            {
                var y = new float[n * 70 + 1];
                y[^1] = 12345f;
                MatMul.Multiply(w, xs, y, n, path);
                Assert.Equal(12345f, y[^1]);
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < 70; r++)
                    {
                        var (exact, norm) = DefinitionDot(w, r, xs.AsSpan(t * 512, 512));
                        Assert.True(Math.Abs(exact - expect[t * 70 + r]) <= 1e-9 * norm);
                        double got = y[t * 70 + r];
                        Assert.True(Math.Abs(got - exact) <= FloatBudget(norm, 512), $"{KernelInfo.Name(path)} n={n} token {t} row {r}: {got} vs {exact}");
                        if (n == 3 && path == KernelInfo.Path)
                            worstQuantized = Math.Max(worstQuantized, Math.Abs(quantized[t * 70 + r] - exact) / FloatBudget(norm, 512));
                    }
            }
        }
        Assert.True(worstQuantized > 10, $"the default (Q8_0) products were within {worstQuantized:F1}x the float budget: not a quantized path?");
    }

    /// <summary>The float GEMM's tile decode (WeightDecode's table lookup) equals Dequantize bit for bit.</summary>
    [Fact]
    public void Float_tile_decode_equals_Dequantize_bit_for_bit() => new GemmTests().Float_tile_decode_equals_Dequantize_bit_for_bit(DType.MXFP4);

    [Fact]
    public void Float_activations_are_refused_where_a_format_has_no_float_body()
    {
        using var w = TestData.Matrix(DType.Q4_0, TestData.Gaussian(4 * 64, 1), 4, 64);
        var ex = Assert.Throws<ArgumentException>(() => w.WithFloatActivations());
        Assert.Contains("Q4_0", ex.Message);
    }

    // ---------- DeepSeek-V4's layout ----------

    /// <summary>Element (r, c) of a V4 FP4 tensor, from its definition: code c of row r is the low nibble of byte c/2
    /// for even c, the high nibble for odd c; × 2^(e − 127) of scale (r, c/32).</summary>
    private static float V4Value(byte* codes, byte* scales, int cols, int r, int c) =>
        (float)(E2M1[(codes[(long)r * cols / 2 + c / 2] >> (4 * (c % 2))) & 0xF] * Math.ScaleB(1.0, scales[(long)r * (cols / 32) + c / 32] - 127));

    private static void AssertConvertsExactly(TensorView codes, TensorView scales)
    {
        using var w = WeightMatrix.FromE2M1(codes, scales);
        int rows = (int)codes.Shape[0], cols = 2 * (int)codes.Shape[1];
        Assert.Equal(DType.MXFP4, w.Type);
        Assert.Equal(rows, w.Rows);
        Assert.Equal(cols, w.Cols);
        Assert.Equal(codes.Name, w.Name);
        var got = Dequantize.Matrix(w);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                float expect = V4Value(codes.Data, scales.Data, cols, r, c);
                Assert.True(expect == got[r * cols + c], $"{codes.Name} ({r}, {c}): {got[r * cols + c]} vs {expect}");
            }
    }

    private sealed class V4Tensor : IDisposable
    {
        public readonly NativeBuffer Codes, Scales;
        public readonly TensorView CodesView, ScalesView;

        public V4Tensor(int rows, int cols, int seed, DType codeType = DType.I8, long[]? scaleShape = null)
        {
            var rng = new Random(seed);
            Codes = new NativeBuffer((long)rows * cols / 2);
            Scales = new NativeBuffer((long)rows * cols / 32);
            rng.NextBytes(Codes.Span);
            for (int i = 0; i < Scales.Length; i++) Scales.Pointer[i] = (byte)rng.Next(0, 255);   // every scale but NaN
            CodesView = new TensorView("layers.1.ffn.experts.2.w1.weight", codeType, [rows, cols / 2], Codes.Pointer, Codes.Length, "test.safetensors");
            ScalesView = new TensorView("layers.1.ffn.experts.2.w1.scale", DType.F8_E8M0, scaleShape ?? [rows, cols / 32], Scales.Pointer, Scales.Length, "test.safetensors");
        }

        public void Dispose() { Codes.Dispose(); Scales.Dispose(); }
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(7, 96)]
    [InlineData(33, 2048)]
    public void FromE2M1_equals_the_direct_decode_of_the_V4_layout(int rows, int cols)
    {
        using var t = new V4Tensor(rows, cols, seed: rows * cols);
        AssertConvertsExactly(t.CodesView, t.ScalesView);
    }

    /// <summary>The fixture's real FP4 experts (DeepSeek's own layout; tests/fixtures/deepseek-v4-tiny): every one
    /// converts exactly, and one of them multiplies on every path like float64 over its direct decode.</summary>
    [Fact]
    public void FromE2M1_converts_the_V4_fixture_experts_exactly()
    {
        string? path = FindV4Fixture();
        if (path == null) Assert.Skip("tests/fixtures/deepseek-v4-tiny/model.safetensors not found above " + AppContext.BaseDirectory);
        using var f = SafeTensorsFile.Open(path!);
        int count = 0;
        foreach (var (name, codes) in f.Tensors)
        {
            if (!name.Contains(".ffn.experts.") || !name.EndsWith(".weight")) continue;
            var scales = f.Tensors[name[..^".weight".Length] + ".scale"];
            AssertConvertsExactly(codes, scales);
            count++;
        }
        Assert.Equal(4 * 8 * 3, count);                          // 4 layers × 8 experts × w1, w2, w3
        using var w1 = WeightMatrix.FromE2M1(f.Tensors["layers.1.ffn.experts.0.w1.weight"], f.Tensors["layers.1.ffn.experts.0.w1.scale"]);
        KernelCheck.EveryPathMultipliesLikeTheFloatReference(w1, [1, 3, 24], n => n + 4);
    }

    private static string? FindV4Fixture()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "tests", "fixtures", "deepseek-v4-tiny", "model.safetensors");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    [Fact]
    public void FromE2M1_refuses_wrong_types_shapes_and_NaN_scales_in_one_line()
    {
        void Refused(TensorView codes, TensorView scales, string names)
        {
            var ex = Assert.Throws<ModelFormatException>(() => WeightMatrix.FromE2M1(codes, scales));
            Assert.DoesNotContain('\n', ex.Message);
            Assert.Contains("test.safetensors", ex.Message);
            Assert.Contains(names, ex.Message);
        }
        using (var t = new V4Tensor(4, 64, 1, codeType: DType.BF16)) Refused(t.CodesView, t.ScalesView, "w1.weight");
        using (var t = new V4Tensor(4, 64, 2, scaleShape: [4, 1])) Refused(t.CodesView, t.ScalesView, "w1.scale");
        using (var t = new V4Tensor(4, 64, 3, scaleShape: [2, 4])) Refused(t.CodesView, t.ScalesView, "w1.scale");
        using (var t = new V4Tensor(4, 64, 4)) Refused(t.CodesView, t.CodesView, "w1.weight");          // codes as scales
        using (var t = new V4Tensor(4, 64, 5))
        {
            t.Scales.Pointer[5] = 0xFF;
            Refused(t.CodesView, t.ScalesView, "w1.scale");
        }
        using (var t = new V4Tensor(2, 64, 6))
        {
            // 40 inputs: not a whole number of 32-element blocks
            var odd = new TensorView("x.weight", DType.I8, [2, 20], t.Codes.Pointer, 40, "test.safetensors");
            Refused(odd, t.ScalesView, "x.weight");
        }
    }
}
