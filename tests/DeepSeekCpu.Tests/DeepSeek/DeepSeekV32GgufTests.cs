using System.Numerics.Tensors;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Weights;
using DeepSeekCpu.Tests.Models;
using static DeepSeekCpu.Tests.Models.Engine;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// GGUF deepseek32 (llama.cpp's DeepSeek-V3.2 architecture): the V3.2 fixture written by our exporter, checked
/// against the names llama.cpp defines (gguf-py/gguf/constants.py MODEL_ARCH.DEEPSEEK32, LLM_KV_ATTENTION_INDEXER_*),
/// read back and compared with DeepSeek's reference logits.
/// </summary>
public class DeepSeekV32GgufTests
{
    private static string Export(TestPaths.TempDir tmp, DType type)
    {
        var (c, w, _, _) = ModelLoader.OpenWeights(DeepSeekV32FixtureTests.FixtureDir);
        using var _w = w;
        string path = tmp.File("v32.gguf");
        var writer = GgufExport.CreateWriter(c, type, "v32-tiny", GgufExport.HasSelectionBias(w), DeepSeekV32FixtureTests.FixtureDir);
        GgufExport.AddTensors(writer, c, w, type);
        writer.Write(path);
        return path;
    }

    [Fact]
    public void WritesLlamaCppNamesForTheIndexer()
    {
        using var tmp = TestPaths.NewTempDir();
        using var g = GgufFile.Open(Export(tmp, DType.F32));
        Assert.Equal("deepseek32", g.GetString("general.architecture"));
        Assert.Equal(8, g.GetInt("deepseek32.attention.indexer.head_count"));
        Assert.Equal(128, g.GetInt("deepseek32.attention.indexer.key_length"));
        Assert.Equal(16, g.GetInt("deepseek32.attention.indexer.top_k"));
        for (int l = 0; l < 4; l++)
        {
            // [out, in] (llama.cpp's create_tensor lists them in ggml order: {n_embd, indexer_head_size} …)
            Assert.Equal([128L, 96L], Shape(g, $"blk.{l}.indexer.attn_k.weight"));
            Assert.Equal([8L * 128, 48L], Shape(g, $"blk.{l}.indexer.attn_q_b.weight"));
            Assert.Equal([8L, 96L], Shape(g, $"blk.{l}.indexer.proj.weight"));
            Assert.Equal([128L], Shape(g, $"blk.{l}.indexer.k_norm.weight"));
            Assert.Equal([128L], Shape(g, $"blk.{l}.indexer.k_norm.bias"));
        }
    }

    private static long[] Shape(GgufFile g, string name)
    {
        Assert.True(g.Tensors.TryGetValue(name, out var t), $"tensor {name} missing");
        return t!.Shape;
    }

    [Fact]
    public void F32GgufMatchesTheReference()
    {
        var r = DeepSeekV32FixtureTests.LoadReference();
        using var tmp = TestPaths.NewTempDir();
        using var m = Assert.IsType<DeepSeekModel>(ModelLoader.Load(Export(tmp, DType.F32), TestPaths.F32Cache));
        Assert.Equal(Architecture.DeepSeekV32, m.Config.Architecture);
        Assert.Equal((8, 128, 16), (m.Config.IndexNHeads, m.Config.IndexHeadDim, m.Config.IndexTopk));
        var rows = Prefill(m, r.PromptIds);
        int vocab = m.Config.VocabSize;
        for (int i = 0; i < r.PromptIds.Length; i++)
            Assert.True(MaxAbsDiff(rows.AsSpan(i * vocab, vocab), r.Rows[i]) <= 1e-4, $"row {i}");
    }

    /// <summary>
    /// A Q8_0 file loads (kv_b is Q8_0 while its per-head W_ukᵀ rows of 24 values are not whole Q8_0 blocks: packed as
    /// float32) and computes finite logits. Not compared with the reference: 8-bit activations move the indexer's
    /// near-tie top-k cuts and so the logits by whole units (the fixture README's fp8 probe: 5.35).
    /// </summary>
    [Fact]
    public void Q8GgufLoadsAndRuns()
    {
        var r = DeepSeekV32FixtureTests.LoadReference();
        using var tmp = TestPaths.NewTempDir();
        using var m = Assert.IsType<DeepSeekModel>(ModelLoader.Load(Export(tmp, DType.Q8_0), TestPaths.F32Cache));
        var rows = Prefill(m, r.PromptIds);
        Assert.All(rows, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void MissingIndexerKeyIsOneLine()
    {
        using var tmp = TestPaths.NewTempDir();
        string src = Export(tmp, DType.F32);
        using (var g = GgufFile.Open(src))
            Assert.NotNull(g.GetInt("deepseek32.attention.indexer.top_k"));
        // rewrite the file without the top_k key: a reader error names the key
        var bytes = File.ReadAllBytes(src);
        var key = System.Text.Encoding.UTF8.GetBytes("deepseek32.attention.indexer.top_k");
        int at = bytes.AsSpan().IndexOf(key);
        Assert.True(at > 0);
        bytes[at + key.Length - 1] = (byte)'x';                     // ...indexer.top_x: an unknown key
        File.WriteAllBytes(src, bytes);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(src, TestPaths.F32Cache));
        Assert.Contains("deepseek32.attention.indexer.top_k", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
