using System.Numerics.Tensors;
using System.Text.Json;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Tests.Models;
using static DeepSeekCpu.Tests.DeepSeek.FixtureComparison;
using static DeepSeekCpu.Tests.Models.Engine;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// tests/fixtures/deepseek-v32-tiny: a 4-layer DeepSeek-V3.2 (MLA + lightning indexer, index_topk 16, 48-token
/// prompt + 24 greedy tokens) whose reference logits and indexer selections come from DeepSeek's own V3.2
/// inference/model.py (DeepSeek-V3.2-Exp commit 87e509a2) in float32 with the fp8 fake-quantization off (its README).
/// From position 16 on every layer attends to 16 keys chosen by the indexer, so a wrong indexer changes the logits
/// by whole units (README "alternative semantics").
/// </summary>
public class DeepSeekV32FixtureTests
{
    internal static string FixtureDir => TestPaths.Fixture("deepseek-v32-tiny");

    internal sealed record Reference(int[] PromptIds, float[][] Rows, int[] Greedy, float[][] GreedyRows, int NextAfterGreedy,
        int[][][] Selected);

    internal static Reference LoadReference()
    {
        string dir = Path.Combine(FixtureDir, "reference");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var root = doc.RootElement;
        int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var prompt = Ints(root.GetProperty("prompt_ids"));
        var greedy = Ints(root.GetProperty("greedy_continuation_24"));
        var selected = root.GetProperty("indexer").GetProperty("selected_key_positions").EnumerateObject()
            .OrderBy(p => int.Parse(p.Name)).Select(p => p.Value.EnumerateArray().Select(Ints).ToArray()).ToArray();
        return new Reference(prompt, ReadRows(Path.Combine(dir, "logits_stepwise_f32.bin"), prompt.Length), greedy,
            ReadRows(Path.Combine(dir, "logits_greedy_f32.bin"), greedy.Length), root.GetProperty("next_token_after_greedy").GetInt32(), selected);
    }

    internal static DeepSeekModel Open(MlaMode mode = MlaMode.Auto)
    {
        var m = Assert.IsType<DeepSeekModel>(ModelLoader.Load(FixtureDir, TestPaths.F32Cache));
        m.MlaMode = mode;
        return m;
    }

    [Fact]
    public void ConfigReadsTheIndexer()
    {
        var c = ModelConfig.FromHfJson(Path.Combine(FixtureDir, "config.json"));
        Assert.Equal(Architecture.DeepSeekV32, c.Architecture);
        Assert.True(c.IsMla && c.HasIndexer);
        Assert.Equal((8, 128, 16), (c.IndexNHeads, c.IndexHeadDim, c.IndexTopk));
    }

    [Theory]
    [InlineData(nameof(MlaMode.Auto))]
    [InlineData(nameof(MlaMode.Naive))]   // DSA layers attend over the latent cache whatever the mode says
    public void StepwiseMatchesReference(string mode)   // MlaMode is internal: a public test names it by name
    {
        var r = LoadReference();
        using var m = Open(Enum.Parse<MlaMode>(mode));
        AssertRowsMatch($"stepwise {mode}", Split(Stepwise(m, r.PromptIds), m.Config.VocabSize), r.Rows);
    }

    [Fact]
    public void PrefillMatchesReference()
    {
        var r = LoadReference();
        using var m = Open();
        AssertRowsMatch("prefill", Split(Prefill(m, r.PromptIds), m.Config.VocabSize), r.Rows);
    }

    /// <summary>A prompt chunk, then one token at a time: the chunk's keys are in both caches when decoding starts.</summary>
    [Fact]
    public void ChunkedPrefillThenStepwiseMatchesReference()
    {
        var r = LoadReference();
        using var m = Open();
        int vocab = m.Config.VocabSize, half = 24;
        using var s = m.NewSession(96);
        var first = new float[half * vocab];
        s.Forward(r.PromptIds.AsSpan(0, half), first, allPositions: true);
        var rows = Split(first, vocab).ToList();
        var logits = new float[vocab];
        for (int i = half; i < r.PromptIds.Length; i++)
        {
            s.Forward(r.PromptIds.AsSpan(i, 1), logits);
            rows.Add(logits.ToArray());
        }
        AssertRowsMatch("chunked", [.. rows], r.Rows);
    }

    /// <summary>The 24-token greedy continuation, and the logits of every greedy step, as the reference produced them.</summary>
    [Fact]
    public void GreedyContinuationMatchesReference()
    {
        var r = LoadReference();
        using var m = Open();
        AssertGreedyContinuation(m, 96, r.PromptIds, r.Greedy, r.GreedyRows, r.NextAfterGreedy);
    }

    /// <summary>
    /// Every layer's top-k selection at every fed position (prompt and greedy) equals the reference's: dense while the
    /// context is at most index_topk, then the indexer's 16 keys (223 of 224 differ from "the 16 most recent").
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IndexerSelectionsMatchReference(bool prefill)
    {
        var r = LoadReference();
        using var m = Open();
        AssertSelectionsMatch(m, o => m.SelectionObserver = o, [.. r.PromptIds, .. r.Greedy], prefill,
            r.Selected.Select((perPosition, layer) => KeyValuePair.Create(layer, perPosition)));
    }

    /// <summary>
    /// Continuous batching: sessions at positions below, around and far above index_topk decode in one DecodeBatch
    /// call, each row with its own index cache and selection, to the reference's logits for its position.
    /// </summary>
    [Fact]
    public void SessionsAtDifferentPositionsDecodeTogether()
    {
        var r = LoadReference();
        using var m = Open();
        AssertDecodeBatchMatches(m, r.PromptIds, r.Rows, start: [3, 15, 30, 44], steps: 3, contextLength: 64, tolerance: 1e-4);
    }

    [Fact]
    public void CacheHoldsTheLatentAndTheIndexKey()
    {
        using var m = Open();
        var c = m.Config;
        Assert.Equal(c.NumLayers * (c.KvLoraRank + c.QkRopeHeadDim + c.IndexHeadDim) * 4L, m.KvBytesPerToken);
        Assert.Equal(128 + 16 + 128, c.KvValuesPerTokenPerLayer);
    }

    /// <summary>A half-precision cache (the default) stays close and keeps every greedy token on this fixture.</summary>
    [Fact]
    public void F16CacheKeepsTheGreedyTokens()
    {
        var r = LoadReference();
        using var m = Assert.IsType<DeepSeekModel>(ModelLoader.Load(FixtureDir, new LoadOptions { CacheType = KvCacheType.F16 }));
        var rows = Split(Stepwise(m, r.PromptIds), m.Config.VocabSize);
        for (int i = 0; i < rows.Length; i++)
            Assert.Equal(TensorPrimitives.IndexOfMax(r.Rows[i]), TensorPrimitives.IndexOfMax(rows[i]));
    }
}
