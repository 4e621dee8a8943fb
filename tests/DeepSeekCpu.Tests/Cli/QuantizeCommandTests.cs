using DeepSeekCpu.Kernels;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>
/// `quantize` writes a GGUF the engine reads back to the independent Python reference's logits: for "llama" this
/// checks the Q/K row permutation and the rope_freqs tensor against llama.cpp's conventions (a wrong permutation moves
/// the logits by whole units), for "qwen2" the absence of both.
/// </summary>
[Collection("Console")]
public class QuantizeCommandTests
{
    [Theory]
    [InlineData("tiny-qwen2", "f16", 1e-4)]
    [InlineData("tiny-llama3", "f16", 1e-4)]
    [InlineData("tiny-qwen2", "q8_0", -1)]
    [InlineData("tiny-llama3", "q8_0", -1)]
    [InlineData("tiny-qwen3", "f16", 1e-4)]
    [InlineData("tiny-qwen3", "q8_0", -1)]
    public void Quantized_gguf_reproduces_the_reference(string name, string type, double tol)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var tmp = TestPaths.NewTempDir();
        string output = tmp.File("out.gguf");
        var err = Console.Error;
        Console.SetError(new StringWriter());
        try { Assert.Equal(0, Commands.Execute(["quantize", "-m", TestPaths.Fixture(name), "--type", type, "-o", output])); }
        finally { Console.SetError(err); }

        using (var g = GgufFile.Open(output))
        {
            Assert.Equal(name switch { "tiny-llama3" => "llama", "tiny-qwen2" => "qwen2", _ => "qwen3" }, g.GetString("general.architecture"));
            Assert.Equal(name == "tiny-qwen3", g.Tensors.ContainsKey("blk.1.attn_k_norm.weight"));
            Assert.Equal(type == "f16" ? DType.F16 : DType.Q8_0, g.Tensors["blk.0.attn_q.weight"].Type);
            Assert.Equal(DType.F32, g.Tensors["blk.0.attn_norm.weight"].Type);
            Assert.Equal(name == "tiny-llama3", g.Tensors.ContainsKey("rope_freqs.weight"));
        }
        using var m = ModelLoader.Load(output, TestPaths.F32Cache);
        var got = Engine.Prefill(m, r.Prompt);
        if (tol > 0) Engine.AssertClose(r.Logits, got, tol, r.Vocab, $"{name} quantize {type}");
        else
        {
            // 8-bit weights and activations: a few percent of relative RMS error, the same top token almost everywhere.
            double rel = Engine.RelativeRms(r.Logits, got);
            Assert.True(rel < 0.08, $"{name} quantize {type}: relative RMS error {rel:P1}");
        }
    }

    [Theory]
    [InlineData("q8_0", 0.08)]
    [InlineData("q4_0", 0.6)]
    public void Quant_option_quantizes_float_weights_at_load(string type, double maxRelRms)
    {
        // --quant TYPE converts F32/F16/BF16 matrices while loading; the logits stay near the reference's
        // (4-bit weights of a 32-wide random model lose far more than real models do: ~48% here; a broken
        // conversion gives ~100% or more).
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen2"));
        using var m = ModelLoader.Load(TestPaths.Fixture("tiny-qwen2"), new LoadOptions { MatrixTransform = Commands.QuantTransform(type), CacheType = KvCacheType.F32 });
        var got = Engine.Prefill(m, r.Prompt);
        double rel = Engine.RelativeRms(r.Logits, got);
        Assert.True(rel < maxRelRms, $"--quant {type}: relative RMS error {rel:P1}");
        Assert.True(rel > 1e-4, "quantization should change the logits");
        // the bytes a token reads shrink accordingly (F32 → 8.5 or 4.5 bits per weight)
        using var f32 = ModelLoader.Load(TestPaths.Fixture("tiny-qwen2"), TestPaths.F32Cache);
        Assert.True(m.WeightBytesPerToken < f32.WeightBytesPerToken / 3, $"{m.WeightBytesPerToken} vs {f32.WeightBytesPerToken}");
    }

    [Fact]
    public void Quantize_refuses_to_overwrite_its_input_and_names_bad_types()
    {
        var err = Console.Error;
        var sw = new StringWriter();
        Console.SetError(sw);
        try
        {
            Assert.Equal(2, Commands.Execute(["quantize", "-m", TestPaths.Fixture("tiny-qwen2"), "--type", "q3_xs", "-o", "/tmp/x.gguf"]));
            Assert.Contains("--type 'q3_xs' is unknown", sw.ToString());
        }
        finally { Console.SetError(err); }
    }
}
