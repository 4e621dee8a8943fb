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

    private static string WriteConfig(TestPaths.TempDir tmp, Func<string, string> edit)
    {
        string text = File.ReadAllText(Path.Combine(DeepSeekV32FixtureTests.FixtureDir, "config.json"));
        string path = tmp.File("config.json");
        File.WriteAllText(path, edit(text));
        return path;
    }

    [Theory]
    [InlineData("\"index_topk\": 16,", "", "index_topk")]
    [InlineData("\"index_head_dim\": 128,", "\"index_head_dim\": 96,", "index_head_dim = 96 is not a power of two")]
    [InlineData("\"index_n_heads\": 8,", "\"index_n_heads\": 0,", "index_n_heads")]
    [InlineData("\"q_lora_rank\": 48,", "", "q_lora_rank is missing")]
    public void BadIndexerConfigIsOneLine(string from, string to, string expected)
    {
        using var tmp = TestPaths.NewTempDir();
        string path = WriteConfig(tmp, t => { Assert.Contains(from, t); return t.Replace(from, to); });
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.FromHfJson(path));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
