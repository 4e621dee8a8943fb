using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// DeepSeek-V4's attention with sinks (<see cref="SinkAttention"/>) and hyper-connection mixing
/// (<see cref="HyperConnections"/>) against float64 formulas written out directly (DeepSeek-V4-Flash inference/model.py
/// and the deepseek-v4-tiny fixture README's transcription of kernel.py).
/// </summary>
public class V4KernelTests
{
    /// <summary>Rows at positions inside the first window, past it (the ring wraps), with and without compressed entries.</summary>
    [Theory]
    [InlineData(4, 16, 5, new[] { 0, 3, 9, 22 }, new[] { 0, 2, 0, 3 })]
    [InlineData(6, 32, 8, new[] { 40 }, new[] { 7 })]
    public void Sink_attention_matches_float64(int heads, int d, int window, int[] positions, int[] counts)
    {
        int n = positions.Length, ring = window + 4, entries = 10, stride = counts.Max();
        var windows = new KvCache[n];
        var compressed = new KvCache?[n];
        var rows = new Dictionary<(int Row, int Pos), float[]>();
        for (int t = 0; t < n; t++)
        {
            windows[t] = new KvCache(KvCacheType.F32, d, ring);
            for (int pos = Math.Max(0, positions[t] - window + 1); pos <= positions[t]; pos++)
                windows[t].Write(pos % ring, rows[(t, pos)] = TestData.Gaussian(d, 100 * t + pos));
            compressed[t] = new KvCache(KvCacheType.F32, d, entries);
            for (int j = 0; j < entries; j++) compressed[t]!.Write(j, rows[(t, -1 - j)] = TestData.Gaussian(d, 7000 + 100 * t + j));
        }
        var indices = new int[n * Math.Max(1, stride)];
        for (int t = 0; t < n; t++) for (int j = 0; j < counts[t]; j++) indices[t * stride + j] = (3 * j + t) % entries;
        var q = TestData.Gaussian(n * heads * d, 1);
        var sinks = TestData.Gaussian(heads, 2);
        var o = new float[n * heads * d];
        float scale = 1 / MathF.Sqrt(d);
        SinkAttention.Attend(q, o, n, heads, d, windows, window, positions, compressed, indices, counts, stride, sinks, scale);

        for (int t = 0; t < n; t++)
        {
            var keys = Enumerable.Range(Math.Max(0, positions[t] - window + 1), Math.Min(window, positions[t] + 1)).Select(pos => rows[(t, pos)])
                .Concat(Enumerable.Range(0, counts[t]).Select(j => rows[(t, -1 - indices[t * stride + j])])).ToArray();
            for (int h = 0; h < heads; h++)
            {
                var s = keys.Select(k => Enumerable.Range(0, d).Sum(i => (double)q[(t * heads + h) * d + i] * k[i]) * scale).ToArray();
                double max = s.Max(), den = s.Sum(v => Math.Exp(v - max)) + Math.Exp(sinks[h] - max);
                for (int i = 0; i < d; i++)
                {
                    double expect = Enumerable.Range(0, keys.Length).Sum(j => Math.Exp(s[j] - max) / den * keys[j][i]);
                    double got = o[(t * heads + h) * d + i];
                    Assert.True(Math.Abs(got - expect) <= 1e-5 + 1e-5 * Math.Abs(expect), $"row {t} head {h} dim {i}: {got} vs {expect}");
                }
            }
        }
    }

    [Theory]
    [InlineData(4, 20)]
    [InlineData(2, 1)]
    [InlineData(3, 7)]
    public void Sinkhorn_split_matches_float64(int hc, int iters)
    {
        const float eps = 1e-6f;
        var mixes = TestData.Gaussian((2 + hc) * hc, 3, 2f);
        var scale = TestData.Gaussian(3, 4);
        var bias = TestData.Gaussian((2 + hc) * hc, 5);
        var (pre, post, comb) = (new float[hc], new float[hc], new float[hc * hc]);
        HyperConnections.SplitSinkhorn(mixes, scale, bias, hc, iters, eps, pre, post, comb);

        static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
        var c = new double[hc, hc];
        for (int i = 0; i < hc; i++)
        {
            Assert.Equal(Sigmoid((double)mixes[i] * scale[0] + bias[i]) + eps, pre[i], 1e-6);
            Assert.Equal(2 * Sigmoid((double)mixes[hc + i] * scale[1] + bias[hc + i]), post[i], 1e-6);
            var row = Enumerable.Range(0, hc).Select(j => (double)mixes[2 * hc + i * hc + j] * scale[2] + bias[2 * hc + i * hc + j]).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int j = 0; j < hc; j++) c[i, j] = Math.Exp(row[j] - max) / sum + eps;
        }
        for (int it = 0; it < iters; it++)
        {
            if (it > 0)
                for (int i = 0; i < hc; i++) { double s = eps; for (int j = 0; j < hc; j++) s += c[i, j]; for (int j = 0; j < hc; j++) c[i, j] /= s; }
            for (int j = 0; j < hc; j++) { double s = eps; for (int i = 0; i < hc; i++) s += c[i, j]; for (int i = 0; i < hc; i++) c[i, j] /= s; }
        }
        for (int i = 0; i < hc; i++)
            for (int j = 0; j < hc; j++) Assert.Equal(c[i, j], comb[i * hc + j], 1e-6);
        for (int j = 0; j < hc; j++)   // the last step normalises the columns
            Assert.Equal(1.0, Enumerable.Range(0, hc).Sum(i => (double)comb[i * hc + j]), 1e-4);
    }

    [Fact]
    public void Collapse_and_expand_match_float64()
    {
        const int hc = 3, dim = 37;
        var streams = TestData.Gaussian(hc * dim, 6);
        var pre = TestData.Gaussian(hc, 7); var post = TestData.Gaussian(hc, 8); var comb = TestData.Gaussian(hc * hc, 9);
        var x = new float[dim];
        HyperConnections.Collapse(streams, pre, x);
        for (int d = 0; d < dim; d++) Assert.Equal(Enumerable.Range(0, hc).Sum(i => (double)pre[i] * streams[i * dim + d]), x[d], 1e-5);
        var before = (float[])streams.Clone();
        HyperConnections.Expand(streams, x, post, comb, new float[hc * dim]);
        for (int j = 0; j < hc; j++)
            for (int d = 0; d < dim; d++)
                Assert.Equal((double)post[j] * x[d] + Enumerable.Range(0, hc).Sum(i => (double)comb[i * hc + j] * before[i * dim + d]), streams[j * dim + d], 1e-5);
    }
}
