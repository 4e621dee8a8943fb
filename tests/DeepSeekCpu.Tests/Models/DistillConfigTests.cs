using Xunit;
using DeepSeekCpu.Models;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// The six published R1 distill config.json files (tests/fixtures/distill-configs) parse into the dims of
/// DEEPSEEK.md's table, with Llama 3.1's llama3 x8 rope scaling, and their rope tables build.
/// </summary>
public class DistillConfigTests
{
    public static TheoryData<string, string, int, int, int, int, int, int, double> Distills => new()
    {
        // name, arch (by name: Architecture is internal, the test public), layers, hidden, heads, kv heads, ffn, vocab, theta
        { "DeepSeek-R1-Distill-Qwen-1.5B", nameof(Architecture.Qwen2), 28, 1536, 12, 2, 8960, 151936, 1e4 },
        { "DeepSeek-R1-Distill-Qwen-7B", nameof(Architecture.Qwen2), 28, 3584, 28, 4, 18944, 152064, 1e4 },
        { "DeepSeek-R1-Distill-Qwen-14B", nameof(Architecture.Qwen2), 48, 5120, 40, 8, 13824, 152064, 1e6 },
        { "DeepSeek-R1-Distill-Qwen-32B", nameof(Architecture.Qwen2), 64, 5120, 40, 8, 27648, 152064, 1e6 },
        { "DeepSeek-R1-Distill-Llama-8B", nameof(Architecture.Llama), 32, 4096, 32, 8, 14336, 128256, 5e5 },
        { "DeepSeek-R1-Distill-Llama-70B", nameof(Architecture.Llama), 80, 8192, 64, 8, 28672, 128256, 5e5 },
    };

    [Theory]
    [MemberData(nameof(Distills))]
    public void Distill_config_parses_with_the_published_dims(string name, string archName, int layers, int hidden, int heads, int kv, int ffn, int vocab, double theta)
    {
        var arch = Enum.Parse<Architecture>(archName);
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("distill-configs", name + ".config.json"));
        Assert.Equal(arch, c.Architecture);
        Assert.Equal((layers, hidden, heads, kv, ffn, vocab), (c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKvHeads, c.IntermediateSize, c.VocabSize));
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(theta, c.RopeTheta);
        Assert.Equal(arch == Architecture.Qwen2, c.AttentionBias);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.RopeInterleaved);     // HF weights: rotate-half
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.Equal(2 * kv * 128, c.KvValuesPerTokenPerLayer);
        if (arch == Architecture.Llama)
        {
            Assert.Equal(1e-5f, c.RmsNormEps);
            var s = Assert.IsType<RopeScaling>(c.RopeScaling);
            Assert.Equal(("llama3", 8.0, 8192, 1.0, 4.0), (s.Type, s.Factor, s.OriginalMaxPositionEmbeddings, s.LowFreqFactor, s.HighFreqFactor));
            Assert.Equal(128000, c.BosTokenId);
        }
        else
        {
            Assert.Null(c.RopeScaling);
            Assert.Equal([151643], c.EosTokenIds);
        }
    }

    [Theory]
    [MemberData(nameof(Distills))]
    public void Distill_rope_table_builds_with_the_right_frequencies(string name, string arch, int layers, int hidden, int heads, int kv, int ffn, int vocab, double theta)
    {
        _ = (layers, hidden, heads, kv, ffn, vocab);
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("distill-configs", name + ".config.json"));
        var t = new RopeTable(c, c.HeadDim, 16);
        Assert.Equal(16, t.MaxPositions);
        Assert.Equal(1f, t.AttentionScaleFactor);
        for (int i = 0; i < 64; i++)
        {
            double f = ExpectedInvFreq(i, 128, theta, arch == nameof(Architecture.Llama));
            Assert.Equal(Math.Cos(f), t.Cos(1)[i], 1e-6);
            Assert.Equal(Math.Sin(15 * f), t.Sin(15)[i], 2e-6);
        }
    }

    /// <summary>
    /// HF transformers: inv_freq = theta^(-2i/d); with Llama 3.1 scaling (_compute_llama3_parameters, factor 8,
    /// low 1, high 4, original 8192): wavelengths above 8192 divided by 8, below 2048 kept, smoothly interpolated between.
    /// </summary>
    private static double ExpectedInvFreq(int i, int d, double theta, bool llama3)
    {
        double f = Math.Pow(theta, -2.0 * i / d);
        if (!llama3) return f;
        double wavelen = 2 * Math.PI / f;
        if (wavelen < 8192 / 4.0) return f;
        if (wavelen > 8192 / 1.0) return f / 8;
        double smooth = (8192 / wavelen - 1) / (4 - 1);
        return (1 - smooth) * f / 8 + smooth * f;
    }

    [Fact]
    public void Llama3_scaling_changes_the_low_frequencies_of_the_8B()
    {
        // The 8B at theta 5e5 has pairs in all three bands; if the scaling were ignored these would not hold.
        var c = ModelConfig.FromHfJson(TestPaths.Fixture("distill-configs", "DeepSeek-R1-Distill-Llama-8B.config.json"));
        var t = new RopeTable(c, 128, 1001);
        // pair 40: wavelength 2π·5e5^(80/128) ≈ 23000 > 8192, so its frequency is divided by 8.
        double plain40 = Math.Pow(5e5, -80.0 / 128);
        Assert.Equal(Math.Sin(1000 * plain40 / 8), t.Sin(1000)[40], 1e-5);
        Assert.True(Math.Abs(Math.Sin(1000 * plain40) - t.Sin(1000)[40]) > 0.1);
        Assert.Equal(Math.Cos(1000 * 1.0), t.Cos(1000)[0], 1e-4);   // highest frequency untouched
    }
}
