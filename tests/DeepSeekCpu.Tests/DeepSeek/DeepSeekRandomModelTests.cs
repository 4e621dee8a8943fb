using DeepSeekCpu.Models.DeepSeek;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// Random tiny DeepSeek models in configurations the fixture does not cover, each compared with
/// <see cref="NaiveDeepSeekReference"/> (an independent plain implementation) on the same weights.
/// </summary>
public class DeepSeekRandomModelTests
{
    internal static readonly int[] Prompt = [3, 17, 42, 5, 77, 9, 31, 60, 2, 11, 88, 23];

    /// <summary>V2-Lite style: no q LoRA (plain q_proj), softmax scores, no normalisation, factor 1, greedy top-k, 2 shared experts.</summary>
    public static TinySpec V2Lite => new()
    {
        ModelType = "deepseek_v2", QLoraRank = null, Scoring = "softmax", NormTopk = false, RoutedScale = 1.0,
        TopkMethod = "greedy", NGroup = 1, TopkGroup = 1, NRouted = 8, TopK = 3, NShared = 2, Seed = 11,
    };

    /// <summary>V2 style: group_limited_greedy (group max), softmax, q LoRA, routed_scaling_factor 16 unnormalised; every other layer MoE.</summary>
    public static TinySpec V2Grouped => new()
    {
        ModelType = "deepseek_v2", Scoring = "softmax", TopkMethod = "group_limited_greedy", NGroup = 4, TopkGroup = 2,
        NRouted = 12, TopK = 3, NormTopk = false, RoutedScale = 16, Layers = 4, FirstKDense = 1, MoeLayerFreq = 2, Seed = 12,
    };

    /// <summary>V3 style with YaRN active (factor 40, mscale 0.707 ≠ mscale_all_dim 1.0 so cos/sin are scaled too), tied embeddings, MTP layer to skip.</summary>
    public static TinySpec V3Yarn => new()
    {
        Scoring = "sigmoid", TopkMethod = "noaux_tc", NGroup = 4, TopkGroup = 2, NRouted = 8, TopK = 2, NormTopk = true,
        RoutedScale = 2.5, GateBias = true, Tie = true, Rope = 8, Yarn = (40, 64, 32, 1, 0.707, 1.0), MtpLayers = 1, Seed = 13,
    };

    public static TheoryData<string> SpecNames() => new("V2Lite", "V2Grouped", "V3Yarn");

    internal static TinySpec ByName(string name) => name switch
    {
        "V2Lite" => V2Lite,
        "V2Grouped" => V2Grouped,
        "V3Yarn" => V3Yarn,
        _ => throw new ArgumentException(name),
    };

    internal static void AssertClose(double[][] expected, float[][] actual, float tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int t = 0; t < expected.Length; t++)
        {
            double d = 0;
            for (int i = 0; i < expected[t].Length; i++) d = Math.Max(d, Math.Abs(expected[t][i] - actual[t][i]));
            TestContext.Current.TestOutputHelper?.WriteLine($"{what} row {t}: max abs diff {d:E2}");
            Assert.True(d <= tol, $"{what} row {t}: max abs diff {d}");
        }
    }

    /// <summary>Relative budget per layer's residual stream (float32 engine against the float64 reference).</summary>
    private const double LayerTolerance = 1e-4;

    /// <summary>
    /// The layer-by-layer comparison names the layer where a disagreement starts: with one weight of layer 2 changed
    /// on the reference's side only, layers 0 and 1 agree and layer 2 is the first that does not.
    /// </summary>
    [Fact]
    public void Layer_comparison_reports_where_a_disagreement_starts()
    {
        var spec = V2Grouped;
        var tensors = TinyDeepSeek.Generate(spec);
        var values = TinyDeepSeek.ValuesByName(tensors).ToDictionary(kv => kv.Key, kv => kv.Value);
        var norm = (float[])values["model.layers.2.post_attention_layernorm.weight"].Clone();
        for (int i = 0; i < norm.Length; i++) norm[i] *= 1.25f;
        values["model.layers.2.post_attention_layernorm.weight"] = norm;
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            var diffs = LayerComparison.Differences(m, new NaiveDeepSeekReference(spec, values), Prompt);
            Assert.Equal(spec.Layers, diffs.Length);
            Assert.Equal(2, LayerComparison.FirstDisagreement(diffs, LayerTolerance));
            Assert.True(diffs[^1] > 100 * LayerTolerance, $"the change should carry on to the last layer: {diffs[^1]}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(SpecNames))]
    public void MatchesIndependentReference(string name)
    {
        var spec = ByName(name);
        var tensors = TinyDeepSeek.Generate(spec);
        var reference = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors));
        var expected = reference.Forward(Prompt);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            Assert.Equal(spec.MtpLayers, m.MtpLayers);
            foreach (var mode in new[] { MlaMode.Absorbed, MlaMode.Naive, MlaMode.Auto })
            {
                m.MlaMode = mode;
                LayerComparison.AssertLayersAgree(m, reference, Prompt, LayerTolerance, $"{name} {mode}");
                AssertClose(expected, DeepSeekFixtureTests.Stepwise(m, Prompt), 1e-3f, $"{name} {mode} stepwise");
                AssertClose(expected, DeepSeekFixtureTests.Prefill(m, Prompt), 1e-3f, $"{name} {mode} prefill");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// The naive path expands the latent cache a slice of tokens at a time into per-head keys and values
    /// (MLA.ExpandSlice, 512 in use): with 5-token slices the 12-token prompt takes three, whose offsets must line up
    /// with the latent and rope rows, against the same float64 reference.
    /// </summary>
    [Fact]
    public void Naive_attention_expanded_in_slices_matches_the_reference()
    {
        var spec = ByName("V2Lite");
        var tensors = TinyDeepSeek.Generate(spec);
        var expected = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors)).Forward(Prompt);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        int before = MLA.ExpandSlice;
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            m.MlaMode = MlaMode.Naive;
            MLA.ExpandSlice = 5;
            AssertClose(expected, DeepSeekFixtureTests.Prefill(m, Prompt), 1e-3f, "naive in 5-token slices, prefill");
        }
        finally { MLA.ExpandSlice = before; Directory.Delete(dir, true); }
    }

    /// <summary>A random model in the official checkpoint's layout (the FP8 test below; also the torch backend's tests).</summary>
    internal static (TinySpec spec, List<TinyTensor> tensors) Fp8Checkpoint(string? scaleFmt = null)
    {
        var spec = new TinySpec
        {
            Hidden = 160, QLoraRank = 136, KvLoraRank = 40, Heads = 3, Nope = 16, Rope = 8, V = 16, Intermediate = 200,
            MoeIntermediate = 48, NRouted = 4, TopK = 2, NShared = 1, Scoring = "sigmoid", TopkMethod = "noaux_tc",
            NGroup = 2, TopkGroup = 1, NormTopk = true, RoutedScale = 2.5, GateBias = true, Vocab = 150, Seed = 21,
        };
        return (spec, OfficialLayout(TinyDeepSeek.Generate(spec), ue8m0: scaleFmt == "ue8m0"));
    }

    /// <summary>The official checkpoint's storage: linear weights FP8 with block scales, embeddings/norms/gate BF16, e_score_correction_bias F32
    /// (the heads, lm_head and the MTP layer's shared_head.head, BF16).</summary>
    internal static List<TinyTensor> OfficialLayout(List<TinyTensor> tensors, bool ue8m0 = false)
    {
        foreach (var t in tensors)
        {
            if (t.Name.EndsWith("e_score_correction_bias")) continue;                  // F32
            if (t.Shape.Length == 2 && !t.Name.Contains("embed_tokens") && !t.Name.EndsWith("mlp.gate.weight") && t.Name != "lm_head.weight" && !t.Name.EndsWith("shared_head.head.weight"))
                TinyDeepSeek.ToFp8(t, ue8m0);
            else TinyDeepSeek.ToBf16(t);
        }
        return tensors;
    }

    /// <summary>
    /// Official-checkpoint layout: linear weights F8_E4M3 with 128x128 block scales (dims not multiples of 128, so edge
    /// blocks are partial), embeddings/norms/gate BF16, e_score_correction_bias F32. The reference runs on the
    /// dequantized values (decoded by the test's own E4M3 table), independent of the engine's FP8 path.
    /// "ue8m0": V3.1's layout, the same F32 weight_scale_inv tensors holding powers of two, and config.json's
    /// quantization_config {"scale_fmt": "ue8m0", ...} as V3.1 publishes it; it loads and computes unchanged.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("ue8m0")]
    public void Fp8BlockScaledCheckpointMatchesReferenceOnDequantizedWeights(string? scaleFmt)
    {
        var (spec, tensors) = Fp8Checkpoint(scaleFmt);
        Assert.Contains(tensors, t => t.DType == "F8_E4M3" && t.Shape[1] > 128);
        if (scaleFmt != null)
            Assert.All(tensors.Where(t => t.ScaleInv != null).SelectMany(t => t.ScaleInv!), s => Assert.Equal(0, BitConverter.SingleToInt32Bits(s) & 0x7FFFFF));
        var reference = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors));
        var expected = reference.Forward(Prompt);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        if (scaleFmt != null)
        {
            // DeepSeek-V3.1 config.json: quantization_config with scale_fmt
            var cfg = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            cfg["quantization_config"] = System.Text.Json.Nodes.JsonNode.Parse(
                $$"""{"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "scale_fmt": "{{scaleFmt}}", "weight_block_size": [128, 128]}""");
            File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        }
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            Assert.Equal(Weights.DType.F8_E4M3, m.Weights.Get("model.layers.0.self_attn.q_a_proj.weight").Type);
            foreach (var mode in new[] { MlaMode.Absorbed, MlaMode.Naive })
            {
                m.MlaMode = mode;
                LayerComparison.AssertLayersAgree(m, reference, Prompt, LayerTolerance, $"fp8 {mode}");
                AssertClose(expected, DeepSeekFixtureTests.Stepwise(m, Prompt), 1e-3f, $"fp8 {mode} stepwise");
                AssertClose(expected, DeepSeekFixtureTests.Prefill(m, Prompt), 1e-3f, $"fp8 {mode} prefill");
            }
        }
        finally { Directory.Delete(dir, true); }
    }
    /// <summary>
    /// V3/R1's MLA shape class: nope = v = 128, so every head's slice of the FP8 kv_b_proj lies on the 128x128 scale
    /// blocks and the absorbed path keeps W_ukᵀ (a byte transpose with transposed scales) and W_uv (a view) in FP8
    /// instead of float32 copies (issue 10: 4 GB at V3 scale). Checked two ways: each per-head matrix decodes to exactly
    /// the transposed / sliced values of kv_b_proj as the engine's FP8 decoder reads them, and the whole model agrees
    /// with the float64 reference on the dequantized weights (kvl = 160: a partial scale block at the end).
    /// </summary>
    [Fact]
    public void Fp8AbsorbedMatricesStayFp8AndExactWhenHeadsLieOnScaleBlocks()
    {
        var spec = new TinySpec
        {
            Hidden = 96, QLoraRank = 64, KvLoraRank = 160, Heads = 2, Nope = 128, Rope = 8, V = 128, Intermediate = 112,
            MoeIntermediate = 32, NRouted = 4, TopK = 2, NShared = 1, Scoring = "sigmoid", TopkMethod = "noaux_tc",
            NGroup = 2, TopkGroup = 1, NormTopk = true, RoutedScale = 2.5, GateBias = true, Vocab = 150, Seed = 23,
        };
        var tensors = OfficialLayout(TinyDeepSeek.Generate(spec));
        var reference = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors));
        var expected = reference.Forward(Prompt);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            const string p = "model.layers.0.self_attn.";
            var kvB = Weights.WeightMatrix.From(m.Weights.Get(p + "kv_b_proj.weight"), m.Weights.Get(p + "kv_b_proj.weight_scale_inv"));
            Assert.Equal(Weights.DType.F8_E4M3, kvB.Type);
            var mla = new MlaWeights(m.Weights, m.Config, p);
            var kvRow = new float[spec.KvLoraRank];
            var ukRow = new float[spec.Nope];
            var uvRow = new float[spec.KvLoraRank];
            for (int h = 0; h < spec.Heads; h++)
            {
                Assert.Equal(Weights.DType.F8_E4M3, mla.WukT[h].Type);
                Assert.Equal(Weights.DType.F8_E4M3, mla.Wuv[h].Type);
                for (int d = 0; d < spec.Nope; d++)
                {
                    Kernels.Dequantize.RowOf(kvB, h * (spec.Nope + spec.V) + d, kvRow);           // W_uk_h row d
                    for (int c = 0; c < spec.KvLoraRank; c++)
                    {
                        Kernels.Dequantize.RowOf(mla.WukT[h], c, ukRow);
                        Assert.Equal(kvRow[c], ukRow[d]);
                    }
                }
                for (int r = 0; r < spec.V; r++)
                {
                    Kernels.Dequantize.RowOf(kvB, h * (spec.Nope + spec.V) + spec.Nope + r, kvRow);
                    Kernels.Dequantize.RowOf(mla.Wuv[h], r, uvRow);
                    Assert.Equal(kvRow, uvRow);
                }
            }
            m.MlaMode = MlaMode.Absorbed;
            LayerComparison.AssertLayersAgree(m, reference, Prompt, LayerTolerance, "fp8 nope=v=128 absorbed");
            AssertClose(expected, DeepSeekFixtureTests.Stepwise(m, Prompt), 1e-3f, "fp8 nope=v=128 stepwise");
            AssertClose(expected, DeepSeekFixtureTests.Prefill(m, Prompt), 1e-3f, "fp8 nope=v=128 prefill");
        }
        finally { Directory.Delete(dir, true); }
    }
}
