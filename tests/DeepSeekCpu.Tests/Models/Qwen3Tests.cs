using Xunit;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// What is particular to Qwen3 (DeepSeek-R1-0528-Qwen3-8B): the config mapping, YaRN as transformers computes it
/// (the reference's recorded frequencies and its cos/sin factor 0.1 ln(factor) + 1, with the config's `attn_factor`
/// ignored as transformers and llama.cpp ignore it), and the GGUF metadata. The logits themselves are checked against
/// the Python reference in LlamaReferenceTests, LlamaGgufReferenceTests and QuantizeCommandTests.
/// </summary>
public class Qwen3Tests
{
    [Fact]
    public void Config_maps_qwen3_fields()
    {
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-qwen3", "config.json"));
        Assert.Equal(Architecture.Qwen3, c.Architecture);
        Assert.True(c.QkNorm);
        Assert.False(c.AttentionBias);
        Assert.Equal(16, c.HeadDim);                       // not hidden / heads = 8
        Assert.Equal(new RopeScaling("yarn", 4, 32), c.RopeScaling);
        Assert.False(c.RopeInterleaved);
    }

    [Fact]
    public void Yarn_frequencies_and_factor_are_the_references()
    {
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen3"));
        double[] expected = r.Json.GetProperty("inv_freq_yarn").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        double[] unscaled = r.Json.GetProperty("inv_freq_unscaled").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        // the ramp spans the pairs: some kept (extrapolated), some divided by 4, at least one in between
        Assert.Contains(expected.Zip(unscaled), p => p.First == p.Second);
        Assert.Contains(expected.Zip(unscaled), p => Math.Abs(p.First - p.Second / 4) < 1e-15);
        Assert.Contains(expected.Zip(unscaled), p => p.First < p.Second && p.First > p.Second / 4 * (1 + 1e-9));
        Assert.True(r.Json.GetProperty("max_abs_diff_vs_unscaled_rope").GetDouble() > 0.1, "fixture logits must depend on the scaling");
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-qwen3", "config.json"));
        var table = new RopeTable(c, c.HeadDim, 32);
        double mscale = 0.1 * Math.Log(4) + 1;              // transformers' default attention factor; attn_factor 0.878 ignored
        Assert.Equal(1f, table.AttentionScaleFactor);
        for (int pos = 1; pos < 32; pos += 5)
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.Equal(Math.Cos(pos * expected[i]) * mscale, table.Cos(pos)[i], 1e-5);
                Assert.Equal(Math.Sin(pos * expected[i]) * mscale, table.Sin(pos)[i], 1e-5);
            }
    }

    [Fact]
    public void Explicit_attention_factor_replaces_the_mscale()
    {
        // transformers _compute_yarn_parameters: a given "attention_factor" is the cos/sin multiplier.
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-qwen3", "config.json"));
        var table = new RopeTable(c with { RopeScaling = c.RopeScaling! with { AttentionFactor = 0.5 } }, c.HeadDim, 4);
        Assert.Equal(0.5, table.Cos(0)[3], 1e-7);
        Assert.Equal(1f, table.AttentionScaleFactor);
    }

    [Fact]
    public void Gguf_metadata_maps_onto_the_config()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture("tiny-qwen3"), DType.F16, tmp.File("q3.gguf"));
        using var g = GgufFile.Open(path);
        var (c, tensors) = DeepSeekCpu.Models.Llama.LlamaGguf.FromGguf(g);
        var hf = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-qwen3", "config.json"));
        Assert.Equal(Architecture.Qwen3, c.Architecture);
        Assert.Equal((hf.NumLayers, hf.HiddenSize, hf.NumHeads, hf.NumKvHeads, hf.HeadDim), (c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim));
        Assert.Equal(hf.RopeScaling, c.RopeScaling);
        Assert.False(c.RopeInterleaved);
        Assert.Equal(new long[] { 16 }, tensors["model.layers.1.self_attn.k_norm.weight"].Shape);
    }

    [Fact]
    public void Missing_k_norm_is_a_one_line_error()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture("tiny-qwen3"), DType.F32, tmp.File("q3.gguf"));
        var bytes = File.ReadAllBytes(path);
        // rename blk.0.attn_k_norm → blk.0.attn_k_nore (same length) so the tensor is absent under its name
        var from = System.Text.Encoding.ASCII.GetBytes("blk.0.attn_k_norm");
        int at = bytes.AsSpan().IndexOf(from);
        Assert.True(at > 0);
        bytes[at + from.Length - 1] = (byte)'e';
        string bad = tmp.File("bad.gguf");
        File.WriteAllBytes(bad, bytes);
        var e = Assert.ThrowsAny<ModelFormatException>(() => ModelLoader.Load(bad, TestPaths.F32Cache));
        Assert.Contains("k_norm", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
