using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>The V3.2 building blocks against their definitions, and the config's error lines.</summary>
public class DeepSeekV32SpecTests
{
    /// <summary>Hadamard.Rotate = x · H_d / √d with H_d built from its definition H_2m = [[H, H], [H, −H]].</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    [InlineData(128)]
    public void HadamardIsTheSylvesterMatrix(int d)
    {
        var h = new int[d, d];
        h[0, 0] = 1;
        for (int m = 1; m < d; m *= 2)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < m; j++)
                {
                    h[i, j + m] = h[i, j];
                    h[i + m, j] = h[i, j];
                    h[i + m, j + m] = -h[i, j];
                }
        var rng = new Random(d);
        var x = Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var expected = new double[d];
        for (int j = 0; j < d; j++)
        {
            for (int i = 0; i < d; i++) expected[j] += x[i] * h[i, j];
            expected[j] /= Math.Sqrt(d);
        }
        Hadamard.Rotate(x);
        for (int j = 0; j < d; j++) Assert.Equal(expected[j], x[j], 1e-5);
    }

    [Fact]
    public void HadamardRefusesOtherLengths() =>
        Assert.Throws<ArgumentException>(() => Hadamard.Rotate(new float[12]));

    /// <summary>The selection's threshold is the k-th value of the sorted array, for every k, with repeated values.</summary>
    [Fact]
    public void KthSmallestIsTheSortedValue()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            int n = rng.Next(1, 300);
            var a = Enumerable.Range(0, n).Select(_ => (float)rng.Next(-20, 20)).ToArray();
            var sorted = a.OrderBy(v => v).ToArray();
            int k = rng.Next(n);
            Assert.Equal(sorted[k], LightningIndex.KthSmallest(a.ToArray(), k));
        }
    }

    /// <summary>
    /// LightningIndex.Select against its definition (score = Σ_h w_h·ReLU(q_h·k_j), the topk highest, equal scores
    /// taken from the lowest position) for a 300-row chunk at ~14K of context: its score matrix exceeds
    /// LightningIndex.MaxScores, so the rows are scored in two groups. Small integer values keep every score exact in
    /// float, and make ties common.
    /// </summary>
    [Fact]
    public void SelectionOfALongChunkEqualsTheDefinition()
    {
        const int n = 300, heads = 2, dim = 8, topk = 64, start = 14_000;
        Assert.True((long)n * (start + n) > LightningIndex.MaxScores, "the chunk must need more than one group");
        var rng = new Random(11);
        var cache = new KvCache(KvCacheType.F32, dim, start + n);
        var keys = new float[start + n][];
        for (int j = 0; j < start + n; j++)
        {
            keys[j] = Enumerable.Range(0, dim).Select(_ => (float)rng.Next(-2, 3)).ToArray();
            cache.Write(j, keys[j]);
        }
        var q = Enumerable.Range(0, n * heads * dim).Select(_ => (float)rng.Next(-2, 3)).ToArray();
        var w = Enumerable.Range(0, n * heads).Select(_ => (float)rng.Next(1, 3)).ToArray();
        var positions = Enumerable.Range(start, n).ToArray();
        var indices = new int[n * topk];
        var counts = new int[n];
        LightningIndex.Select(q, w, n, heads, dim, Enumerable.Repeat(cache, n).ToArray(), positions, topk, indices, counts);

        for (int t = 0; t < n; t += 7)
        {
            var score = new double[positions[t] + 1];
            for (int j = 0; j < score.Length; j++)
                for (int h = 0; h < heads; h++)
                {
                    double dot = 0;
                    for (int d = 0; d < dim; d++) dot += q[(t * heads + h) * dim + d] * keys[j][d];
                    score[j] += w[t * heads + h] * Math.Max(dot, 0);
                }
            var expected = Enumerable.Range(0, score.Length).OrderByDescending(j => score[j]).ThenBy(j => j).Take(topk).Order().ToArray();
            Assert.Equal(topk, counts[t]);
            Assert.Equal(expected, indices.AsSpan(t * topk, topk).ToArray());
        }
    }

    /// <summary>The fixture's config.json with <paramref name="from"/> replaced by <paramref name="to"/> fails to read with one line containing <paramref name="expected"/>.</summary>
    internal static void AssertConfigErrorLine(string fixtureDir, string from, string to, string expected)
    {
        using var tmp = TestPaths.NewTempDir();
        string text = File.ReadAllText(Path.Combine(fixtureDir, "config.json"));
        Assert.Contains(from, text);
        string path = tmp.File("config.json");
        File.WriteAllText(path, text.Replace(from, to));
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.FromHfJson(path));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("\"index_topk\": 16,", "", "index_topk")]
    [InlineData("\"index_head_dim\": 128,", "\"index_head_dim\": 96,", "index_head_dim = 96 is not a power of two")]
    [InlineData("\"index_n_heads\": 8,", "\"index_n_heads\": 0,", "index_n_heads")]
    [InlineData("\"q_lora_rank\": 48,", "", "q_lora_rank is missing")]
    public void BadIndexerConfigIsOneLine(string from, string to, string expected) =>
        AssertConfigErrorLine(DeepSeekV32FixtureTests.FixtureDir, from, to, expected);
}

/// <summary>DeepSeek-V4's config (tests/fixtures/deepseek-v4-tiny) is read field by field; bad fields are refused in one line.</summary>
public class DeepSeekV4ConfigTests
{
    private static string FixtureDir => TestPaths.Fixture("deepseek-v4-tiny");

    [Fact]
    public void ReadsTheV4Fields()
    {
        var c = ModelConfig.FromHfJson(Path.Combine(FixtureDir, "config.json"));
        Assert.Equal(Architecture.DeepSeekV4, c.Architecture);
        Assert.False(c.IsMla);
        var v4 = Assert.IsType<DeepSeekCpu.Models.DeepSeek.DeepSeekV4Config>(c.V4);
        Assert.Equal([4, 0, 8, 4], v4.CompressRatios);
        Assert.Equal((4, 20, 1e-6), (v4.HcMult, v4.HcSinkhornIters, v4.HcEps));
        Assert.Equal((3, 24, 8, 1), (v4.OGroups, v4.OLoraRank, v4.SlidingWindow, v4.NumHashLayers));
        Assert.Equal((160000.0, 2.5, "fp4"), (v4.CompressRopeTheta, v4.SwigluLimit, v4.ExpertDtype));
        Assert.Equal((8, 64, 6), (c.IndexNHeads, c.IndexHeadDim, c.IndexTopk));
        Assert.Equal((80, 1, 16, 48), (c.HeadDim, c.NumKvHeads, c.QkRopeHeadDim, c.QLoraRank));
        Assert.Equal(("sqrtsoftplus", 2.0, 64), (c.ScoringFunc, c.RoutedScalingFactor, c.MoeIntermediateSize));
        Assert.Equal(("yarn", 16.0, 65536), (c.RopeScaling!.Type, c.RopeScaling.Factor, c.RopeScaling.OriginalMaxPositionEmbeddings));
    }

    [Theory]
    [InlineData("\"compress_ratios\": [\n    4,\n    0,\n    8,\n    4\n  ]", "\"compress_ratios\": [4, 0]", "compress_ratios has 2 entries")]
    [InlineData("\"hc_mult\": 4,", "", "hc_mult")]
    [InlineData("\"num_hash_layers\": 1,", "\"num_hash_layers\": 9,", "num_hash_layers = 9")]
    [InlineData("\"expert_dtype\": \"fp4\",", "\"expert_dtype\": \"int3\",", "expert_dtype \"int3\"")]
    public void BadV4FieldIsOneLine(string from, string to, string expected) =>
        DeepSeekV32SpecTests.AssertConfigErrorLine(FixtureDir, from, to, expected);
}
