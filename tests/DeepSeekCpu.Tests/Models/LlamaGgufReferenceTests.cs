using Xunit;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// The tiny models converted to GGUF in the test (llama.cpp naming and Q/K permutation for llama, written with
/// GgufWriter) must give the Python reference's logits. F16 and BF16 hold exactly the same numbers as F32 (the
/// fixtures' weights are bf16- and f16-representable); Q8_0 is lossy and gets a loose bound.
/// </summary>
public class LlamaGgufReferenceTests
{
    public static TheoryData<string, DType> Cases()
    {
        var d = new TheoryData<string, DType>();
        foreach (var name in new[] { "tiny-qwen2", "tiny-llama3", "tiny-qwen3" })
            foreach (var t in TinyGguf.Types) d.Add(name, t);
        return d;
    }

    // Q8_0 noise on these random weights moves logits (|logit| up to ~16) by up to ~0.5; its exact decoding is checked
    // separately against a test-side dequantization (Gguf_q8_0_equals_its_test_side_dequantization).
    private static double Tolerance(DType t) => t == DType.Q8_0 ? 1.0 : 1e-4;

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gguf_prefill_and_stepwise_match_python_reference(string name, DType type)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture(name), type, tmp.File($"{name}-{type}.gguf"));
        using var m = ModelLoader.Load(path, TestPaths.F32Cache);
        Assert.Equal(name == "tiny-llama3", m.Config.RopeInterleaved);
        Assert.Equal(name == "tiny-qwen2", m.Config.AttentionBias);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), Tolerance(type), r.Vocab, $"{name} gguf {type} prefill");
        Engine.AssertClose(r.Logits, Engine.Stepwise(m, r.Prompt), Tolerance(type), r.Vocab, $"{name} gguf {type} stepwise");
        if (type != DType.Q8_0)
            Assert.Equal(r.Greedy, Engine.Greedy(m, r.Prompt, r.Greedy.Length));
        else
        {
            // Quantization noise may flip a close call late in a free-running continuation; the prompt rows' argmax must hold.
            int agree = 0;
            for (int i = 0; i < r.Prompt.Length; i++)
                if (Engine.ArgMax(r.Logits.AsSpan(i * r.Vocab, r.Vocab)) == Engine.ArgMax(Engine.Prefill(m, r.Prompt).AsSpan(i * r.Vocab, r.Vocab))) agree++;
            Assert.True(agree >= r.Prompt.Length - 1, $"Q8_0 argmax agrees with the reference at only {agree}/{r.Prompt.Length} positions");
        }
    }

    [Theory]
    [InlineData("tiny-qwen2")]
    [InlineData("tiny-llama3")]
    [InlineData("tiny-qwen3")]
    public void Gguf_q8_0_equals_its_test_side_dequantization(string name)
    {
        // The same Q8_0 blocks decoded by the test (ggml dequantize_row_q8_0) and stored as F32: the engine's Q8_0
        // path must reproduce those logits up to its 8-bit activations (x is quantized to Q8_0 blocks before the
        // integer dot products, as llama.cpp's vec_dot_q8_0_q8_0 does), so
        // the loose reference bound above hides no decoding bug: a mis-decoded block moves logits by far more.
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var tmp = TestPaths.NewTempDir();
        string q8 = TinyGguf.Convert(TestPaths.Fixture(name), DType.Q8_0, tmp.File("q8.gguf"));
        string deq = TinyGguf.Convert(TestPaths.Fixture(name), DType.F32, tmp.File("deq.gguf"),
            matrixTransform: v => TinyGguf.DequantizeQ8_0(TinyGguf.QuantizeQ8_0(v)));
        using var mq = ModelLoader.Load(q8, TestPaths.F32Cache);
        using var md = ModelLoader.Load(deq, TestPaths.F32Cache);
        var expected = Engine.Prefill(md, r.Prompt);
        Assert.True(Engine.MaxAbsDiff(expected, r.Logits) > 1e-3, "quantization should have changed the logits");
        // Per-element activation error is up to amax/254 of its block (RMS ≈ 1.4% of the activations' RMS for these
        // 32-wide blocks), compounding over 2 layers: a few percent. A wrongly decoded block gives ~100%.
        foreach (var (mode, got) in new[] { ("prefill", Engine.Prefill(mq, r.Prompt)), ("stepwise", Engine.Stepwise(mq, r.Prompt)) })
        {
            double rel = Engine.RelativeRms(expected, got);
            TestContext.Current.SendDiagnosticMessage($"[maxdiff] {name} gguf Q8_0 {mode} vs test-dequantized F32: relative RMS {rel:E2}");
            Assert.True(rel < 0.06, $"{name} {mode}: Q8_0 logits differ from the test-side dequantization by {rel:P2} (relative RMS)");
        }
    }

    [Fact]
    public void Gguf_llama_without_the_qk_permutation_gives_other_logits()
    {
        // Guards the test above: the permutation matters for these weights, so a converter or loader that got it wrong
        // (or applied it to qwen2) would be caught.
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-llama3"));
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture("tiny-llama3"), DType.F32, tmp.File("unpermuted.gguf"), skipPermute: true);
        using var m = ModelLoader.Load(path, TestPaths.F32Cache);
        Assert.True(Engine.MaxAbsDiff(r.Logits, Engine.Prefill(m, r.Prompt)) > 0.05);
    }

    [Fact]
    public void Gguf_llama3_with_only_the_rope_freqs_tensor_uses_its_factors()
    {
        // convert_hf_to_gguf.py stores Llama 3.1 scaling only as the rope_freqs tensor (per-frequency divisors) and writes
        // no rope.scaling.* keys; llama.cpp divides each frequency by rope_freqs[i]. The tiny model's original context
        // (64) differs from Llama 3.1's 8192, so an engine that assumes the 8B defaults instead of reading the tensor
        // gets other frequencies.
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-llama3"));
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture("tiny-llama3"), DType.F32, tmp.File("freqs-only.gguf"), ropeFreqsOnly: true);
        using var m = ModelLoader.Load(path, TestPaths.F32Cache);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), 1e-4, r.Vocab, "tiny-llama3 gguf rope_freqs only");
    }

    [Fact]
    public void Gguf_metadata_maps_onto_the_config()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = TinyGguf.Convert(TestPaths.Fixture("tiny-qwen2"), DType.F16, tmp.File("q.gguf"));
        using var g = GgufFile.Open(path);
        Assert.Equal(3u, g.Version);
        var (c, tensors) = DeepSeekCpu.Models.Llama.LlamaGguf.FromGguf(g);
        var hf = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-qwen2", "config.json"));
        Assert.Equal(Architecture.Qwen2, c.Architecture);
        Assert.Equal((hf.NumLayers, hf.HiddenSize, hf.IntermediateSize, hf.NumHeads, hf.NumKvHeads, hf.HeadDim, hf.VocabSize),
                     (c.NumLayers, c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.Equal(hf.RmsNormEps, c.RmsNormEps);
        Assert.Equal(hf.RopeTheta, c.RopeTheta);
        Assert.False(c.TieWordEmbeddings);
        Assert.True(c.AttentionBias);
        Assert.Equal(DType.F16, tensors["model.layers.1.mlp.down_proj.weight"].Type);
        Assert.Equal(DType.F32, tensors["model.layers.1.input_layernorm.weight"].Type);
        Assert.Equal(new long[] { 96, 32 }, tensors["lm_head.weight"].Shape);
    }
}
