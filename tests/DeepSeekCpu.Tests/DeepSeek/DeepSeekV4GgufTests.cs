using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek.V4;
using DeepSeekCpu.Weights;
using static DeepSeekCpu.Tests.Models.Engine;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// GGUF deepseek4 (llama.cpp's layout, Models/DeepSeek/V4/V4Gguf): tests/fixtures/deepseek-v4-tiny written by our GGUF
/// writer (as `quantize --type bf16` does: its values are bf16-exact, its FP4 experts become MXFP4 stacks losslessly)
/// loads into the V4 graph and matches DeepSeek's own reference logits, so the check does not rest on our writer.
/// </summary>
public class DeepSeekV4GgufTests
{
    private static string WriteFixtureGguf(TestPaths.TempDir dir)
    {
        var (c, weights, _, _) = ModelLoader.OpenWeights(DeepSeekV4FixtureTests.FixtureDir);
        using var _w = weights;
        var w = GgufExport.CreateWriter(c, DType.BF16, "deepseek-v4-tiny", GgufExport.HasSelectionBias(weights), DeepSeekV4FixtureTests.FixtureDir);
        GgufExport.AddTensors(w, c, weights, DType.BF16);
        string path = dir.File("v4.gguf");
        w.Write(path);
        return path;
    }

    [Fact]
    public void FixtureAsGgufMatchesReference()
    {
        using var dir = new TestPaths.TempDir();
        string path = WriteFixtureGguf(dir);
        using (var g = GgufFile.Open(path))
        {
            // llama.cpp's names (gguf-py constants.py) and types (conversion/deepseek.py DeepseekV4Model)
            Assert.Equal("deepseek4", g.GetString("general.architecture"));
            Assert.Equal(DType.MXFP4, g.Tensors["blk.1.ffn_gate_exps.weight"].Type);
            Assert.Equal([8L, 64, 96], g.Tensors["blk.1.ffn_gate_exps.weight"].Shape);
            Assert.Equal([8L, 96, 64], g.Tensors["blk.1.ffn_down_exps.weight"].Shape);
            Assert.Equal(DType.I32, g.Tensors["blk.0.ffn_gate_tid2eid.weight"].Type);
            foreach (var name in new[] { "output_hc_fn.weight", "blk.0.attn_compressor_kv.weight", "blk.0.indexer_compressor_ape.weight",
                "blk.2.attn_compressor_gate.weight", "blk.3.indexer.proj.weight", "blk.1.attn_sinks.weight", "blk.1.exp_probs_b.bias",
                "blk.0.attn_output_a.weight", "blk.1.hc_ffn_fn.weight" })
                Assert.True(g.Tensors.ContainsKey(name), name);
            Assert.Equal(4L, g.GetInt("deepseek4.expert_gating_func"));
            Assert.Equal(new[] { 4, 0, 8, 4 }, Assert.IsType<int[]>(g.Metadata["deepseek4.attention.compress_ratios"]));
        }
        var r = DeepSeekV4FixtureTests.LoadReference();
        using var m = Assert.IsType<DeepSeekV4Model>(ModelLoader.Load(path, TestPaths.F32Cache));
        Assert.StartsWith("96 x MXFP4 (4.25 bits per weight, float32 activations);", m.ExpertDescription);
        int vocab = m.Config.VocabSize;
        FixtureComparison.AssertRowsMatch("gguf prefill", FixtureComparison.Split(Prefill(m, r.PromptIds), vocab), r.Rows);
        FixtureComparison.AssertRowsMatch("gguf stepwise", FixtureComparison.Split(Stepwise(m, r.PromptIds), vocab), r.Rows);
    }
}
