using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek.V4;
using static DeepSeekCpu.Tests.Models.Engine;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// Random tiny DeepSeek-V4 models with layer patterns, widths and storage the fixture does not have (an HCA layer
/// first, hc_mult 2 and 3, o_groups 2 and 4, FP8 linears with E8M0 block scales, two hash layers, sigmoid scoring),
/// each compared with <see cref="NaiveV4Reference"/> (float64, whole-sequence formulation): the logits of every
/// position, one prefill and token by token, and every CSA layer's indexer selection.
/// </summary>
public class DeepSeekV4RandomModelTests
{
    public static TheoryData<string> Cases() => ["hca-csa-window", "csa-csa-hca-window", "window-hca"];

    private static TinyDeepSeekV4 ByName(string name) => name switch
    {
        "hca-csa-window" => new TinyDeepSeekV4 { Ratios = [16, 4, 0], Seed = 11 },
        "csa-csa-hca-window" => new TinyDeepSeekV4
        {
            Ratios = [4, 4, 8, 0], Hc = 2, OGroups = 4, Window = 3, IndexTopk = 2, HashLayers = 2, Rope = 4, Seed = 12,
            ScoringFunc = "sigmoid", Fp8 = ["attn.wq_a", "attn.wkv", "compressor.wkv", "indexer.wq_b", "shared_experts.w1"],
        },
        "window-hca" => new TinyDeepSeekV4 { Ratios = [0, 32], Hc = 4, Window = 6, HashLayers = 0, Seed = 13 },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesIndependentReference(string name)
    {
        var spec = ByName(name);
        using var dir = new TestPaths.TempDir();
        spec.Write(dir.Path);
        var tokens = Enumerable.Range(0, 41).Select(i => (i * 37 + spec.Seed * 11) % spec.Vocab).ToArray();
        var reference = new NaiveV4Reference(spec);
        var expected = reference.Forward(tokens);
        Assert.True(reference.MinIndexCutMargin > 1e-5, $"{name}: an index top-k cut is a near tie ({reference.MinIndexCutMargin:E2}); pick another seed");

        using var m = Assert.IsType<DeepSeekV4Model>(ModelLoader.Load(dir.Path, TestPaths.F32Cache));
        var seen = new Dictionary<(int, int), int[]>();
        m.SelectionObserver = (layer, pos, selected) => seen[(layer, pos)] = selected.ToArray();
        int vocab = spec.Vocab;
        foreach (var (mode, logits) in new[] { ("prefill", Prefill(m, tokens)), ("stepwise", Stepwise(m, tokens)) })
        {
            double worst = 0;
            for (int t = 0; t < tokens.Length; t++)
            {
                var row = logits.AsSpan(t * vocab, vocab);
                for (int v = 0; v < vocab; v++) worst = Math.Max(worst, Math.Abs(row[v] - expected[t][v]));
            }
            TestContext.Current.TestOutputHelper?.WriteLine($"{name} {mode}: max abs diff {worst:E2}");
            Assert.True(worst < 1e-4, $"{name} {mode}: max abs logit difference {worst}");
            foreach (var (key, sel) in reference.Selections)
                Assert.True(sel.SequenceEqual(seen[key]), $"{name} {mode} layer {key.Layer} position {key.Position}: [{string.Join(",", seen[key])}] vs [{string.Join(",", sel)}]");
        }
    }

    /// <summary>Bad checkpoints are refused at load in one line naming the file and the tensor.</summary>
    [Theory]
    [InlineData("tid2eid", "routes token 0 to expert 6, expected 0..5")]
    [InlineData("layers.0.attn.attn_sink", "tensor layers.0.attn.attn_sink is missing")]
    [InlineData("layers.1.ffn.experts.2.w3.scale", "FP4 tensor layers.1.ffn.experts.2.w3.weight has no layers.1.ffn.experts.2.w3.scale")]
    [InlineData("layers.1.attn.indexer.compressor.ape", "tensor layers.1.attn.indexer.compressor.ape is missing")]
    public void BadCheckpointIsOneLine(string what, string expected)
    {
        var spec = new TinyDeepSeekV4 { Ratios = [16, 4, 0], Seed = 11 };
        if (what == "tid2eid") spec.FirstHashExpert = spec.Experts; else spec.Omit.Add(what);
        using var dir = new TestPaths.TempDir();
        spec.Write(dir.Path);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(dir.Path, TestPaths.F32Cache));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
