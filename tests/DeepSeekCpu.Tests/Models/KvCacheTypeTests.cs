using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Models.Llama;
using Xunit;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// --cache-type on whole models: the logits with an f16, bf16 or q8_0 cache against the same model with a float32
/// cache, over a batched prefill and then one token at a time, within the budgets stated in the README; and a session's
/// cache memory grows with its tokens, not its context.
/// </summary>
public class KvCacheTypeTests(ITestOutputHelper log)
{
    // Budgets on the largest logit difference from the f32 cache, as a fraction of the largest |logit| (README, "KV
    // cache types"): rounding keys/values to f16 (11-bit significand) is ~2.4e-4 relative per value, bf16 (8 bits)
    // ~2e-3, q8_0 up to 4e-3 of a block's largest value; the tiny random models amplify it over 300 tokens.
    public static TheoryData<string, KvCacheType, double> Cases() => new()
    {
        { "deepseek-v3-tiny", KvCacheType.F16, 5e-3 }, { "deepseek-v3-tiny", KvCacheType.BF16, 5e-2 }, { "deepseek-v3-tiny", KvCacheType.Q8_0, 5e-2 },
        { "tiny-llama3", KvCacheType.F16, 5e-3 }, { "tiny-llama3", KvCacheType.BF16, 5e-2 }, { "tiny-llama3", KvCacheType.Q8_0, 5e-2 },
        { "tiny-qwen2", KvCacheType.F16, 5e-3 }, { "tiny-qwen2", KvCacheType.BF16, 5e-2 }, { "tiny-qwen2", KvCacheType.Q8_0, 5e-2 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logits_stay_within_the_budget_of_the_f32_cache(string name, KvCacheType type, double budget)
    {
        using var m = ModelLoader.Load(TestPaths.Fixture(name), TestPaths.F32Cache);
        // as long as the fixture allows: tiny-llama3 (512 positions) crosses a cache chunk (256)
        int n = Math.Min(300, m.Config.MaxPositionEmbeddings - 20);
        var rng = new Random(5);
        var tokens = Enumerable.Range(0, n).Select(_ => rng.Next(m.Config.VocabSize)).ToArray();
        int split = n - 12;                                          // a prefill, then 12 decoding steps
        var exact = Run(m, tokens, split);
        SetCacheType(m, type);
        var got = Run(m, tokens, split);
        double scale = exact.Max(Math.Abs), diff = Engine.MaxAbsDiff(exact, got);
        string line = $"[kvcache] {name} {type}: max |logit diff| {diff:G3} = {diff / scale:G3} of max |logit| {scale:G3} over {n} tokens";
        log.WriteLine(line);
        Console.WriteLine(line);
        Assert.True(diff <= budget * scale, $"{name} {type}: {diff} > {budget} x {scale}");
        Assert.True(diff > 0, $"{name} {type}: logits equal to the f32 cache's: the cache type is not used");
    }

    private static float[] Run(ILanguageModel m, int[] tokens, int split)
    {
        int v = m.Config.VocabSize;
        using var s = m.NewSession(tokens.Length);
        var logits = new float[(tokens.Length - split + 1) * v];
        s.Forward(tokens.AsSpan(0, split), logits.AsSpan(0, v));
        for (int i = split; i < tokens.Length; i++) s.Forward(tokens.AsSpan(i, 1), logits.AsSpan((i - split + 1) * v, v));
        return logits;
    }

    private static void SetCacheType(ILanguageModel m, KvCacheType type)
    {
        if (m is DeepSeekModel d) d.CacheType = type; else ((LlamaModel)m).CacheType = type;
    }

    [Theory]
    [InlineData("deepseek-v3-tiny")]
    [InlineData("tiny-qwen2")]
    public void Sessions_allocate_cache_for_their_tokens_not_their_context(string name)
    {
        using var m = ModelLoader.Load(TestPaths.Fixture(name));   // default: f16
        var sessions = Enumerable.Range(0, 8).Select(_ => (ModelSession)m.NewSession(1 << 20)).ToList();
        Assert.All(sessions, s => Assert.Equal(0, CacheBytes(s)));
        var logits = new float[m.Config.VocabSize];
        sessions[0].Forward([1, 2, 3], logits);
        // one chunk of positions per layer (and per K and V for GQA), at 2 bytes a value
        Assert.Equal(KvCache.ChunkRows * m.KvBytesPerToken, CacheBytes(sessions[0]));
        Assert.Equal(0, CacheBytes(sessions[1]));
        foreach (var s in sessions) s.Dispose();
    }

    [Fact]
    public void Info_prints_the_memory_plan_at_the_chosen_cache_type()
    {
        var saved = Console.Out;
        var sw = new StringWriter();
        Console.SetOut(sw);
        try { Assert.Equal(0, DeepSeekCpu.Cli.Commands.Dispatch(["info", "-m", TestPaths.Fixture("tiny-llama3"), "--ctx", "100", "--parallel", "3", "--cache-type", "q8_0"])); }
        finally { Console.SetOut(saved); }
        string text = sw.ToString();
        // 2 layers x (K + V) x one Q8_0 block (2 KV heads x 8 = 16 values, padded to 32: 34 bytes)
        Assert.Contains("kv cache:     136 bytes per token x 100 x 3 = ", text);
        Assert.Contains("--ctx 100 --parallel 3 --cache-type q8_0", text);
        Assert.Matches(@"total:\s+[\d.]+ MiB; this machine: [\d.]+ GiB -> fits", text);
    }

    private static long CacheBytes(ModelSession s) => s switch
    {
        DeepSeekSession d => d.CacheBytes,
        LlamaSession l => l.CacheBytes,
        _ => throw new ArgumentException(s.GetType().Name),
    };
}
