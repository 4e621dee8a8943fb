using Xunit;
using DeepSeekCpu.Models;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// The Llama/Qwen2/Qwen3 graph against tools/reference/llama_ref.py (plain Python, double precision, written from the
/// HF / llama2.c semantics): tiny random Qwen2 (biases, GQA, untied head), Llama 3.1 (llama3 rope scaling, tied
/// head) and Qwen3 (q_norm/k_norm, head_dim 16 != hidden/heads, YaRN) in F32 and BF16 safetensors, and the real llama2.c model stories260K (interleaved rope).
/// </summary>
public class LlamaReferenceTests
{
    // The BF16 files hold exactly the F32 files' numbers (the generator rounds every weight to bf16), so the same
    // reference applies; the tolerance is only a little looser for a different accumulation path.
    public static TheoryData<string, string, double> HfModels => new()
    {
        { "tiny-qwen2", "", 1e-4 },
        { "tiny-qwen2", "bf16", 2e-4 },
        { "tiny-llama3", "", 1e-4 },
        { "tiny-llama3", "bf16", 2e-4 },
        { "tiny-qwen3", "", 1e-4 },
        { "tiny-qwen3", "bf16", 2e-4 },
    };

    private static string ModelDir(string name, string variant) =>
        variant == "" ? TestPaths.Fixture(name) : TestPaths.Fixture(name, variant);

    [Theory]
    [MemberData(nameof(HfModels))]
    public void Prefill_logits_match_python_reference(string name, string variant, double tol)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var m = ModelLoader.Load(ModelDir(name, variant), TestPaths.F32Cache);
        Assert.Equal(r.Vocab, m.Config.VocabSize);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), tol, r.Vocab, $"{name}/{variant} prefill");
    }

    [Theory]
    [MemberData(nameof(HfModels))]
    public void Stepwise_logits_match_python_reference(string name, string variant, double tol)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var m = ModelLoader.Load(ModelDir(name, variant), TestPaths.F32Cache);
        Engine.AssertClose(r.Logits, Engine.Stepwise(m, r.Prompt), tol, r.Vocab, $"{name}/{variant} stepwise");
    }

    [Theory]
    [MemberData(nameof(HfModels))]
    public void Chunked_prefill_over_a_warm_cache_matches_python_reference(string name, string variant, double tol)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var m = ModelLoader.Load(ModelDir(name, variant), TestPaths.F32Cache);
        Engine.AssertClose(r.Logits, Engine.Chunked(m, r.Prompt, 5, 1, 4, 2), tol, r.Vocab, $"{name}/{variant} chunked 5+1+4+2");
    }

    [Theory]
    [MemberData(nameof(HfModels))]
    public void Greedy_continuation_matches_python_reference(string name, string variant, double tol)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        Assert.True(r.GreedyMargin > 100 * tol, $"reference greedy margin {r.GreedyMargin} too small to be a fair test");
        using var m = ModelLoader.Load(ModelDir(name, variant), TestPaths.F32Cache);
        Assert.Equal(r.Greedy, Engine.Greedy(m, r.Prompt, r.Greedy.Length));
    }

    [Theory]
    [InlineData("tiny-qwen2")]
    [InlineData("tiny-llama3")]
    [InlineData("tiny-qwen3")]
    public void Truncate_then_refeed_gives_reference_logits(string name)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var m = ModelLoader.Load(TestPaths.Fixture(name), TestPaths.F32Cache);
        int v = r.Vocab, n = r.Prompt.Length, keep = 7;
        using var s = m.NewSession(n + 8);
        var scratch = new float[n * v];
        // Fill the cache with a different suffix first, then rewind to `keep` and feed the real suffix.
        var wrong = r.Prompt.Select((t, i) => i < keep ? t : (t + 11) % v).ToArray();
        s.Forward(wrong, scratch, allPositions: true);
        s.Truncate(keep);
        Assert.Equal(keep, s.Position);
        var tail = new float[(n - keep) * v];
        s.Forward(r.Prompt.AsSpan(keep), tail, allPositions: true);
        Engine.AssertClose(r.Logits.AsSpan(keep * v), tail, 1e-4, v, $"{name} truncate+refeed");
    }

    [Fact]
    public void Llama3_rope_scaling_is_what_the_reference_used()
    {
        // The reference recorded the llama3-scaled inverse frequencies; the engine's table must rotate by them.
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-llama3"));
        double[] expected = r.Json.GetProperty("inv_freq_llama3").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        double[] unscaled = r.Json.GetProperty("inv_freq_unscaled").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.True(expected.Zip(unscaled).Count(p => Math.Abs(p.First - p.Second) > 1e-6) >= 2, "fixture must exercise the scaling");
        Assert.True(r.Json.GetProperty("max_abs_diff_vs_unscaled_rope").GetDouble() > 0.1, "fixture logits must depend on the scaling");
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("tiny-llama3", "config.json"));
        var table = new RopeTable(c, c.HeadDim, 32);
        for (int pos = 1; pos < 32; pos += 5)
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.Equal(Math.Cos(pos * expected[i]), table.Cos(pos)[i], 1e-5);
                Assert.Equal(Math.Sin(pos * expected[i]), table.Sin(pos)[i], 1e-5);
            }
    }

    // ---- stories260K (karpathy/llama2.c, the real demo model) ----

    private static readonly string StoriesRef = TestPaths.Fixture("tiny-stories260K-reference");

    [Fact]
    public void Stories260K_prefill_and_stepwise_match_python_reference()
    {
        var r = ReferenceData.Load(StoriesRef);
        using var m = ModelLoader.Load(TestPaths.Stories260K, TestPaths.F32Cache);
        Assert.True(m.Config.RopeInterleaved);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), 1e-4, r.Vocab, "stories260K prefill");
        Engine.AssertClose(r.Logits, Engine.Stepwise(m, r.Prompt), 1e-4, r.Vocab, "stories260K stepwise");
    }

    [Fact]
    public void Stories260K_greedy_64_tokens_match_python_reference()
    {
        var r = ReferenceData.Load(StoriesRef);
        Assert.Equal(64, r.Greedy.Length);
        using var m = ModelLoader.Load(TestPaths.Stories260K, TestPaths.F32Cache);
        Assert.Equal(r.Greedy, Engine.Greedy(m, r.Prompt, 64));
    }

    [Fact]
    public void Stories260K_long_prefill_equals_stepwise()
    {
        // 70 positions (prompt + greedy continuation): batched prefill must agree with one-token decoding.
        var r = ReferenceData.Load(StoriesRef);
        int[] seq = [.. r.Prompt, .. r.Greedy];
        using var m = ModelLoader.Load(TestPaths.Stories260K, TestPaths.F32Cache);
        Engine.AssertClose(Engine.Stepwise(m, seq), Engine.Prefill(m, seq), 1e-4, r.Vocab, "stories260K prefill vs stepwise (70 tokens)");
    }
}
