using DeepSeekCpu.Cli;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// `quantize` of DeepSeek Hugging Face folders (F32, BF16-free FP8 included) to GGUF deepseek2, read back through
/// DeepSeekGguf: float exports reproduce DeepSeek's reference logits for the fixture and the naive float64 reference
/// for random V2-Lite / V3-YaRN / FP8 models; Q8_0 stays within the bounds the hand-written GGUF tests use.
/// </summary>
[Collection("Console")]
public class DeepSeekQuantizeTests
{
    private static (int Code, string Err) Quantize(string model, string type, string output)
    {
        var err = Console.Error;
        var sw = new StringWriter();
        Console.SetError(sw);
        try { return (Commands.Execute(["quantize", "-m", model, "--type", type, "-o", output]), sw.ToString()); }
        finally { Console.SetError(err); }
    }

    [Fact]
    public void Fixture_exported_as_f32_gguf_reproduces_deepseeks_reference_logits()
    {
        var r = DeepSeekFixtureTests.LoadReference();
        using var tmp = TestPaths.NewTempDir();
        string output = tmp.File("v3-tiny.gguf");
        Assert.Equal(0, Quantize(DeepSeekFixtureTests.FixtureDir, "f32", output).Code);
        using (var g = GgufFile.Open(output))
        {
            Assert.Equal("deepseek2", g.GetString("general.architecture"));
            Assert.Equal(3, g.Tensors["blk.1.ffn_gate_exps.weight"].Rank);          // experts stacked
            Assert.Equal(DType.F32, g.Tensors["blk.1.ffn_gate_inp.weight"].Type);    // the router stays F32
            Assert.True(g.Tensors.ContainsKey("blk.1.exp_probs_b.bias"));
        }
        using var m = DeepSeekFixtureTests.Load(output);
        Assert.Equal("noaux_tc", m.Config.TopkMethod);
        var pre = DeepSeekFixtureTests.Prefill(m, r.PromptIds);
        var step = DeepSeekFixtureTests.Stepwise(m, r.PromptIds);
        for (int i = 0; i < r.PromptIds.Length; i++)
        {
            Assert.True(DeepSeekCpu.Tests.Models.Engine.MaxAbsDiff(pre[i], r.Rows[i]) <= 1e-3f, $"prefill row {i}");
            Assert.True(DeepSeekCpu.Tests.Models.Engine.MaxAbsDiff(step[i], r.Rows[i]) <= 1e-3f, $"stepwise row {i}");
        }
    }

    [Theory]
    [InlineData("V2Lite", "f32")]
    [InlineData("V3YarnGguf", "f32")]
    [InlineData("Fp8", "f32")]
    [InlineData("V2Lite", "q8_0")]
    public void Random_model_exported_to_gguf_matches_the_independent_reference(string name, string type)
    {
        var spec = name switch
        {
            "V2Lite" => DeepSeekRandomModelTests.V2Lite,
            "V3YarnGguf" => DeepSeekGgufTests.V3YarnGguf,
            _ => DeepSeekRandomModelTests.V2Lite with { Hidden = 160, Seed = 31 },
        };
        var tensors = TinyDeepSeek.Generate(spec);
        if (name == "Fp8")
            foreach (var t in tensors)
                if (t.Shape.Length == 2 && !t.Name.Contains("embed_tokens") && !t.Name.EndsWith("mlp.gate.weight") && t.Name != "lm_head.weight")
                    TinyDeepSeek.ToFp8(t);   // the reference then computes with the dequantized values
        var expected = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors)).Forward(DeepSeekRandomModelTests.Prompt);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        using var tmp = TestPaths.NewTempDir();
        try
        {
            string output = tmp.File("out.gguf");
            var (code, err) = Quantize(dir, type, output);
            Assert.True(code == 0, err);
            using var m = DeepSeekFixtureTests.Load(output);
            Assert.Equal(spec.Layers, m.Config.NumLayers);
            Assert.Equal(0, m.MtpLayers);                                  // MTP layers are not exported
            var prefill = DeepSeekFixtureTests.Prefill(m, DeepSeekRandomModelTests.Prompt);
            var stepwise = DeepSeekFixtureTests.Stepwise(m, DeepSeekRandomModelTests.Prompt);
            if (type == "f32")
            {
                DeepSeekRandomModelTests.AssertClose(expected, prefill, 1e-3f, $"{name} prefill");
                DeepSeekRandomModelTests.AssertClose(expected, stepwise, 1e-3f, $"{name} stepwise");
            }
            else
            {
                Assert.Equal(DType.Q8_0, m.Weights.Get("model.layers.1.mlp.experts.3.gate_proj.weight").Type);
                DeepSeekGgufTests.AssertCloseRelative(expected, prefill, 0.25, $"{name} {type} prefill");
                DeepSeekGgufTests.AssertCloseRelative(expected, stepwise, 0.25, $"{name} {type} stepwise");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("V2Grouped", "moe_layer_freq 2")]
    [InlineData("V3Yarn", "mscale 0.707 differs from mscale_all_dim 1")]
    public void Configs_the_gguf_layout_cannot_express_are_refused_in_one_line(string name, string why)
    {
        var spec = DeepSeekRandomModelTests.ByName(name);
        string dir = TinyDeepSeek.WriteFolder(spec, TinyDeepSeek.Generate(spec));
        using var tmp = TestPaths.NewTempDir();
        try
        {
            string output = tmp.File("out.gguf");
            var (code, err) = Quantize(dir, "q8_0", output);
            Assert.Equal(1, code);
            Assert.Contains(why, err);
            Assert.Contains(dir, err);
            Assert.Single(err.Trim().Split('\n'));
            Assert.False(File.Exists(output));
        }
        finally { Directory.Delete(dir, true); }
    }
}
