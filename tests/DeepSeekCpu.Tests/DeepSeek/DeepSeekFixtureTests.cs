using DeepSeekCpu.Kernels;
using System.Text.Json;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Tests.Models;
using static DeepSeekCpu.Tests.Models.Engine;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// tests/fixtures/deepseek-v3-tiny: a 3-layer DeepSeek-V3 (q LoRA, sigmoid noaux_tc routing with 2 groups, 1 dense
/// layer, 1 shared expert) whose reference logits come from deepseek-ai/DeepSeek-V3 inference/model.py in float32.
/// </summary>
public class DeepSeekFixtureTests
{
    internal static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "fixtures", "deepseek-v3-tiny");

    internal sealed record Reference(int[] PromptIds, float[][] Rows, int[] Greedy);

    internal static Reference LoadReference()
    {
        string dir = Path.Combine(FixtureDir, "reference");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var prompt = doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var greedy = doc.RootElement.GetProperty("greedy_continuation_16").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var bytes = File.ReadAllBytes(Path.Combine(dir, "logits_stepwise_f32.bin"));
        var all = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, all, 0, bytes.Length);
        int vocab = all.Length / prompt.Length;
        var rows = Enumerable.Range(0, prompt.Length).Select(i => all.AsSpan(i * vocab, vocab).ToArray()).ToArray();
        return new Reference(prompt, rows, greedy);
    }

    /// <summary>A DeepSeek model from a Hugging Face folder or a GGUF file, through the loader the CLI uses.</summary>
    internal static DeepSeekModel Load(string path) => Assert.IsType<DeepSeekModel>(ModelLoader.Load(path, TestPaths.F32Cache));

    /// <summary>A Hugging Face folder with the rope layout overridden (what the loader never does).</summary>
    internal static DeepSeekModel Load(string dir, bool ropeInterleaved)
    {
        var (config, weights, _, _) = ModelLoader.OpenWeights(dir);
        try { return new DeepSeekModel(weights, config, ropeInterleaved) { CacheType = KvCacheType.F32 }; }
        catch { weights.Dispose(); throw; }
    }

    internal static DeepSeekModel Open(string variant, MlaMode mode)
    {
        var m = Load(variant == "f32" ? FixtureDir : Path.Combine(FixtureDir, variant));
        m.MlaMode = mode;
        return m;
    }

    /// <summary>Logits after each prompt token, fed one at a time: [n][vocab].</summary>
    internal static float[][] Stepwise(DeepSeekModel m, int[] tokens) => Rows(Engine.Stepwise(m, tokens), m.Config.VocabSize);

    /// <summary>Logits of every prompt position from one batched prefill.</summary>
    internal static float[][] Prefill(DeepSeekModel m, int[] tokens) => Rows(Engine.Prefill(m, tokens), m.Config.VocabSize);

    private static float[][] Rows(float[] all, int vocab) =>
        Enumerable.Range(0, all.Length / vocab).Select(i => all.AsSpan(i * vocab, vocab).ToArray()).ToArray();

    /// <summary>Weights type and <see cref="MlaMode"/> (by name: the enum is internal, the test methods public).</summary>
    public static TheoryData<string, string> Variants()
    {
        var d = new TheoryData<string, string>();
        foreach (var v in new[] { "f32", "bf16" })
            foreach (var mode in new[] { MlaMode.Absorbed, MlaMode.Naive, MlaMode.Auto })
                d.Add(v, mode.ToString());
        return d;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void StepwiseMatchesReference(string variant, string mode)
    {
        var r = LoadReference();
        using var m = Open(variant, Enum.Parse<MlaMode>(mode));
        var rows = Stepwise(m, r.PromptIds);
        for (int i = 0; i < rows.Length; i++)
        {
            double d = MaxAbsDiff(rows[i], r.Rows[i]);
            TestContext.Current.TestOutputHelper?.WriteLine($"{variant} {mode} stepwise row {i}: max abs diff {d:E2}");
            Assert.True(d <= 1e-3f, $"row {i}: max abs diff {d}");
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void PrefillMatchesReference(string variant, string mode)
    {
        var r = LoadReference();
        using var m = Open(variant, Enum.Parse<MlaMode>(mode));
        var rows = Prefill(m, r.PromptIds);
        for (int i = 0; i < rows.Length; i++)
        {
            double d = MaxAbsDiff(rows[i], r.Rows[i]);
            TestContext.Current.TestOutputHelper?.WriteLine($"{variant} {mode} prefill row {i}: max abs diff {d:E2}");
            Assert.True(d <= 1e-3f, $"row {i}: max abs diff {d}");
        }
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("bf16")]
    public void GreedyContinuationMatchesReference(string variant)
    {
        var r = LoadReference();
        using var m = Open(variant, MlaMode.Auto);
        FixtureComparison.AssertGreedyContinuation(m, 64, r.PromptIds, r.Greedy);   // the V3 fixture has no greedy logits
    }

    [Fact]
    public void AbsorbedAndNaiveAgree()
    {
        var r = LoadReference();
        using var a = Open("f32", MlaMode.Absorbed);
        using var n = Open("f32", MlaMode.Naive);
        var ra = Stepwise(a, r.PromptIds);
        var rn = Stepwise(n, r.PromptIds);
        for (int i = 0; i < ra.Length; i++) Assert.True(MaxAbsDiff(ra[i], rn[i]) <= 1e-4f, $"row {i}");
        var pa = Prefill(a, r.PromptIds);
        var pn = Prefill(n, r.PromptIds);
        for (int i = 0; i < pa.Length; i++) Assert.True(MaxAbsDiff(pa[i], pn[i]) <= 1e-4f, $"row {i}");
    }

    [Fact]
    public void PrefillAndStepwiseAgree()
    {
        var r = LoadReference();
        using var m = Open("f32", MlaMode.Auto);
        var step = Stepwise(m, r.PromptIds);
        var pre = Prefill(m, r.PromptIds);
        for (int i = 0; i < step.Length; i++) Assert.True(MaxAbsDiff(step[i], pre[i]) <= 1e-4f, $"row {i}");
    }

    [Fact]
    public void TruncateThenRefeedGivesTheSameLogits()
    {
        var r = LoadReference();
        using var m = Open("f32", MlaMode.Auto);
        using var s = m.NewSession(64);
        var logits = new float[m.Config.VocabSize];
        s.Forward(r.PromptIds, logits);
        s.Truncate(4);
        Assert.Equal(4, s.Position);
        s.Forward(r.PromptIds.AsSpan(4), logits);
        Assert.True(MaxAbsDiff(logits, r.Rows[^1]) <= 1e-3f);
    }

    [Fact]
    public void KvCacheHoldsOnlyLatentAndRopeKey()
    {
        using var m = Open("f32", MlaMode.Auto);
        var c = m.Config;
        Assert.Equal(c.NumLayers * (16 + 8) * 4L, m.KvBytesPerToken);
        Assert.Equal(0, m.MtpLayers);
        Assert.True(m.RopeInterleaved);
    }

    /// <summary>The fixture decides the rope layout: rotating halves (rotate_half without HF's de-interleave) is wrong here.</summary>
    [Fact]
    public void RotatingHalvesDoesNotMatchTheReference()
    {
        var r = LoadReference();
        using var m = Load(FixtureDir, ropeInterleaved: false);
        var rows = Prefill(m, r.PromptIds);
        Assert.True(MaxAbsDiff(rows[^1], r.Rows[^1]) > 1e-2f);
    }
}

/// <summary>
/// Allocation is counted process-wide (the worker pool's threads take part), so these tests run alone: a
/// non-parallel collection runs after every parallel one has finished.
/// </summary>
[CollectionDefinition("DeepSeek allocation", DisableParallelization = true)]
public class DeepSeekAllocationCollection;

[Collection("DeepSeek allocation")]
public class DeepSeekAllocationTests
{
    /// <summary>Decoding allocates nothing once the session's per-thread scratch exists.</summary>
    [Theory]
    [InlineData(nameof(MlaMode.Absorbed))]
    [InlineData(nameof(MlaMode.Auto))]
    public void DecodingDoesNotAllocate(string mode)
    {
        using var m = DeepSeekFixtureTests.Open("f32", Enum.Parse<MlaMode>(mode));
        using var s = m.NewSession(64);
        var logits = new float[m.Config.VocabSize];
        int[] token = [5];
        for (int i = 0; i < 4; i++) s.Forward(token, logits);     // warm-up: JIT, thread-static scratch
        // A pool worker allocates its thread-static scratch the first time it happens to take a chunk of some job,
        // which depends on scheduling, so one window may still see that. A per-token allocation shows in every window.
        var windows = new List<long>();
        for (int w = 0; w < 5 && (windows.Count == 0 || windows[^1] != 0); w++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 8; i++) s.Forward(token, logits);
            windows.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.True(windows[^1] == 0, $"bytes allocated over 8 decode steps, window by window: {string.Join(", ", windows)}");
    }
}
