using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Grouped attention (several query heads over one key/value stream, strided as the KV caches lay it out) against a
/// float64 per-head softmax(q·k·scale)·v written out directly.
/// </summary>
public class AttentionTests
{
    [Theory]
    [InlineData(1, 64, 64, 1)]
    [InlineData(4, 72, 64, 37)]     // MLA-like: key = [latent ; rope] longer than the value, which is its prefix
    [InlineData(3, 16, 16, 300)]
    public void Grouped_heads_match_per_head_float64_attention(int heads, int dk, int dv, int len)
    {
        int qStride = dk + 3, kStride = dk + 5, vStride = dk + 5, oStride = dv + 2;  // padding between rows
        var q = TestData.Gaussian(heads * qStride, 1);
        var cache = TestData.Gaussian(len * kStride, 2);      // values are the first dv of each key row
        float scale = 0.125f;
        var o = new float[heads * oStride];
        var scores = new float[heads * len];
        Ops.Attention(q, qStride, heads, dk, cache, kStride, cache, vStride, dv, len, scale, scores, o, oStride);
        AssertFloat64Attention(q, qStride, heads, dk, cache, kStride, vStride, dv, len, scale, o, oStride, "");
    }

    /// <summary>
    /// Checks o[g, :dv] (row stride oStride) against softmax(scale · q_g · k_j) · v_j over j &lt; len in float64, each
    /// head g over one shared key/value stream: k_j = kv[j·kStride ..][..dk], v_j = kv[j·vStride ..][..dv].
    /// </summary>
    internal static void AssertFloat64Attention(float[] q, int qStride, int heads, int dk, float[] kv, int kStride, int vStride,
        int dv, int len, float scale, float[] o, int oStride, string label)
    {
        for (int g = 0; g < heads; g++)
        {
            var s = new double[len];
            for (int j = 0; j < len; j++)
            {
                double dot = 0;
                for (int d = 0; d < dk; d++) dot += (double)q[g * qStride + d] * kv[j * kStride + d];
                s[j] = dot * scale;
            }
            double max = s.Max(), sum = s.Sum(v => Math.Exp(v - max));
            for (int d = 0; d < dv; d++)
            {
                double expect = 0;
                for (int j = 0; j < len; j++) expect += Math.Exp(s[j] - max) / sum * kv[j * vStride + d];
                Assert.True(Math.Abs(o[g * oStride + d] - expect) <= 1e-5 + 1e-5 * Math.Abs(expect), $"{label}head {g} dim {d}: {o[g * oStride + d]} vs {expect}");
            }
        }
    }

    [Theory]
    [InlineData(16, 1, 2, 8)]    // V2-Lite MLA: 16 heads over one latent stream, 2 threads: two items of 8
    [InlineData(6, 2, 2, 6)]     // Qwen 1.5B GQA: 2 KV heads already give both threads an item
    [InlineData(6, 2, 16, 1)]
    [InlineData(7, 1, 2, 1)]     // a prime group splits only into single heads
    [InlineData(4, 8, 1, 4)]
    public void Heads_per_item_divides_the_group_and_feeds_every_thread(int group, int streams, int threads, int expect) =>
        Assert.Equal(expect, Attention.HeadsPerItem(group, streams, threads));

    [Theory]
    [InlineData(6, 128, 32, 160)]     // Qwen 1.5B's group over a tile
    [InlineData(8, 576, 17, 576)]     // MLA: 8 heads over latent rows, a partial tile
    [InlineData(3, 21, 5, 30)]        // odd sizes: vector tails and fewer than 4 heads
    [InlineData(9, 3, 2, 3)]          // narrower than a vector: the scalar bodies
    public unsafe void Tile_products_match_their_float64_definitions(int heads, int d, int m, int stride)
    {
        var q = TestData.Gaussian(heads * d, 1);
        var rows = TestData.Gaussian(m * stride, 2);
        var p = TestData.Gaussian(heads * (m + 3), 3);                 // weights with a row stride of m + 3
        var o = TestData.Gaussian(heads * d, 4);                       // accumulated onto
        var s = new float[heads * (m + 1)];
        var acc = (float[])o.Clone();
        fixed (float* qp = q, rp = rows, pp = p, sp = s, ap = acc)
        {
            AttentionTile.Scores(qp, heads, d, rp, m, stride, 0.5f, sp, m + 1);
            AttentionTile.Accumulate(pp, m + 3, heads, rp, m, stride, d, ap);
        }
        for (int g = 0; g < heads; g++)
        {
            for (int j = 0; j < m; j++)
            {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)q[g * d + c] * rows[j * stride + c];
                Assert.True(Math.Abs(s[g * (m + 1) + j] - 0.5 * dot) <= 1e-5 * (1 + Math.Abs(dot)), $"score {g},{j}");
            }
            for (int c = 0; c < d; c++)
            {
                double expect = o[g * d + c];
                for (int j = 0; j < m; j++) expect += (double)p[g * (m + 3) + j] * rows[j * stride + c];
                Assert.True(Math.Abs(acc[g * d + c] - expect) <= 1e-5 * (1 + Math.Abs(expect)), $"output {g},{c}");
            }
        }
    }

    [Theory]
    [InlineData(64, 576, 32, 576)]    // MLA prompt block: 8 rows x 8 heads over latent rows, a whole tile
    [InlineData(60, 128, 13, 160)]    // Qwen 1.5B: 10 rows x 6 heads padded to whole vectors, 4-key steps and a tail
    [InlineData(7, 21, 5, 30)]        // fewer queries than a vector, odd sizes: tails everywhere
    [InlineData(16, 3, 2, 3)]         // narrower than a vector: scalar columns
    public unsafe void Block_tile_products_match_their_float64_definitions(int count, int d, int m, int stride)
    {
        // queries in lanes: qT [d, cp], cp = count rounded up to the vector width; padding queries zero
        int cp = (count + AttentionTile.Lanes - 1) / AttentionTile.Lanes * AttentionTile.Lanes;
        var q = TestData.Gaussian(count * d, 1);
        var qT = new float[d * cp];
        for (int g = 0; g < count; g++)
            for (int c = 0; c < d; c++) qT[c * cp + g] = q[g * d + c];
        var rows = TestData.Gaussian(m * stride, 2);
        var pT = TestData.Gaussian(m * cp, 3);                         // weights [m, cp], key-major
        var o = TestData.Gaussian(count * d, 4);                       // accumulated onto
        var sT = new float[m * cp];
        var acc = (float[])o.Clone();
        fixed (float* qp = qT, rp = rows, pp = pT, sp = sT, ap = acc)
        {
            AttentionTile.ScoresT(qp, cp, d, rp, m, stride, 0.5f, sp);
            AttentionTile.AccumulateT(pp, cp, count, rp, m, stride, d, ap);
        }
        for (int j = 0; j < m; j++)
            for (int g = 0; g < cp; g++)
            {
                double dot = 0;
                for (int c = 0; c < d && g < count; c++) dot += (double)q[g * d + c] * rows[j * stride + c];
                Assert.True(Math.Abs(sT[j * cp + g] - 0.5 * dot) <= 1e-5 * (1 + Math.Abs(dot)), $"score {g},{j}: {sT[j * cp + g]} vs {0.5 * dot}");
            }
        for (int g = 0; g < count; g++)
            for (int c = 0; c < d; c++)
            {
                double expect = o[g * d + c];
                for (int j = 0; j < m; j++) expect += (double)pT[j * cp + g] * rows[j * stride + c];
                Assert.True(Math.Abs(acc[g * d + c] - expect) <= 1e-5 * (1 + Math.Abs(expect)), $"output {g},{c}");
            }
    }

    [Theory]
    [InlineData(3, 150, 0, 16, 8, 16)]    // a prompt chunk of 150 rows: three query blocks of 64, diagonal tiles masked
    [InlineData(2, 20, 45, 24, 8, 20)]    // a later chunk after 45 cached positions
    [InlineData(4, 1, 9, 12, 4, 12)]      // one row
    public void Expanded_MLA_attention_matches_float64_causal_attention(int heads, int n, int start, int nope, int rope, int v)
    {
        // kv [total, heads, nope + v] (the expansion product: keys' nope part, then values), rope keys in a cache of
        // rows [latent 10 ; k_pe] (peOffset 10, peStride 10 + rope), queries [n, heads, nope + rope]
        int total = start + n, dk = nope + rope, peStride = 10 + rope;
        var kv = TestData.Gaussian(total * heads * (nope + v), 1);
        var pe = TestData.Gaussian(total * peStride, 2);
        var q = TestData.Gaussian(n * heads * dk, 3);
        var o = new float[n * heads * v];
        float scale = 0.2f;
        // laid out per head a slice of 7 tokens at a time (as MLA expands in slices), into a buffer with room for
        // 3 more tokens than the sequence holds (cap > total)
        int cap = total + 3;
        var kvHeads = new float[heads * cap * (dk + v)];
        for (int t0 = 0; t0 < total; t0 += 7)
        {
            int m = Math.Min(7, total - t0);
            Attention.ToHeads(kv[(t0 * heads * (nope + v))..], m, t0, cap, heads, nope, rope, v, pe, peOffset: 10, peStride: peStride, kvHeads);
        }
        Attention.Expanded(q, o, n, start, heads, dk, v, kvHeads, cap, scale);
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
            {
                int len = start + t + 1;
                var s = new double[len];
                for (int j = 0; j < len; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < nope; d++) dot += (double)q[(t * heads + h) * dk + d] * kv[(j * heads + h) * (nope + v) + d];
                    for (int d = 0; d < rope; d++) dot += (double)q[(t * heads + h) * dk + nope + d] * pe[10 + j * peStride + d];
                    s[j] = dot * scale;
                }
                double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                for (int d = 0; d < v; d++)
                {
                    double expect = 0;
                    for (int j = 0; j < len; j++) expect += Math.Exp(s[j] - max) / sum * kv[(j * heads + h) * (nope + v) + nope + d];
                    float got = o[(t * heads + h) * v + d];
                    Assert.True(Math.Abs(got - expect) <= 1e-5 + 1e-5 * Math.Abs(expect), $"row {t} head {h} dim {d}: {got} vs {expect}");
                }
            }
    }

    [Theory]
    [InlineData(KvCacheType.F32, 8, 40, 16)]     // two tiles of selected rows, the second partial
    [InlineData(KvCacheType.Q8_0, 3, 72, 64)]    // MLA-like latent rows [64 ; rope 8]; odd heads
    public void Sparse_attention_over_selected_rows_matches_float64_attention(KvCacheType type, int heads, int dk, int dv)
    {
        // n rows, each over its own cache and its own list of selected positions (ascending, as the indexer gives
        // them): softmax over those rows alone, values the first dv of each selected row
        int len = 100, stride = 70, n = 3;
        int[] counts = [1, 33, 70];
        var caches = new KvCache[n];
        var stored = new float[n][];
        var indices = new int[n * stride];
        for (int t = 0; t < n; t++)
        {
            caches[t] = new KvCache(type, dk, len);
            stored[t] = new float[len * dk];
            for (int j = 0; j < len; j++)
            {
                caches[t].Write(j, TestData.Gaussian(dk, 100 * t + j));
                caches[t].Read(j, stored[t].AsSpan(j * dk, dk));
            }
            var pick = TestData.Gaussian(len, 50 + t).Select((x, j) => (x, j)).OrderBy(p => p.x).Take(counts[t]).Select(p => p.j).Order().ToArray();
            pick.CopyTo(indices, t * stride);
        }
        var q = TestData.Gaussian(n * heads * dk, 7);
        var o = new float[n * heads * dv];
        float scale = 0.15f;
        SparseAttention.Selected(q, o, n, heads, dk, dv, caches, indices, counts, stride, scale);
        for (int t = 0; t < n; t++)
        {
            // the selected rows as one contiguous stream, then the shared float64 check over all of them
            var rows = new float[counts[t] * dk];
            for (int i = 0; i < counts[t]; i++) stored[t].AsSpan(indices[t * stride + i] * dk, dk).CopyTo(rows.AsSpan(i * dk));
            AssertFloat64Attention(q[(t * heads * dk)..], dk, heads, dk, rows, dk, dk, dv, counts[t], scale, o[(t * heads * dv)..], dv, $"{type} row {t} ");
        }
    }
}
