using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The KV cache's storage types: the vector readers against the element-by-element reference on the same stored
/// bytes, the round-trip error of each type against its format's bound, growth in chunks, and the attention kernel
/// over each type against float64 attention over the values the cache holds.
/// </summary>
public class KvCacheTests
{
    public static TheoryData<KvCacheType, int> Types() => new()
    {
        { KvCacheType.F32, 24 }, { KvCacheType.F16, 24 }, { KvCacheType.BF16, 24 }, { KvCacheType.Q8_0, 24 },   // DeepSeek fixture row: kvl 16 + rope 8
        { KvCacheType.F16, 576 }, { KvCacheType.BF16, 576 }, { KvCacheType.Q8_0, 576 },                        // V3 row: 512 + 64
        { KvCacheType.F16, 37 }, { KvCacheType.BF16, 37 }, { KvCacheType.Q8_0, 37 },                           // odd widths: vector tails, a partial block
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void Vector_readers_equal_the_scalar_reference_and_stay_within_the_format_bound(KvCacheType type, int width)
    {
        var cache = new KvCache(type, width, 600);
        var rows = Enumerable.Range(0, 3).Select(i => TestData.Gaussian(width, 10 + i, 3f)).ToArray();
        int[] at = [0, 255, 513];                                       // first, last of a chunk, a third chunk
        for (int i = 0; i < 3; i++) cache.Write(at[i], rows[i]);
        Assert.Equal(3L * KvCache.ChunkRows * KvCache.RowBytesOf(type, width), cache.AllocatedBytes); // chunks 0, 1 (for 513: 2) — three
        for (int i = 0; i < 3; i++)
        {
            var fast = new float[width]; var slow = new float[width];
            cache.Read(at[i], fast);
            KvCache.ReadRowScalar(type, cache.RowBytesAt(at[i]), slow);
            Assert.Equal(slow, fast);                                   // bit for bit
            for (int b = 0; b < width; b += 32)
            {
                // f16: 11-bit significand (relative 2^-11, absolute 2^-25 in subnormals); bf16: 8 bits; q8_0: half a step of max|x|/127
                float amax = rows[i].AsSpan(b, Math.Min(32, width - b)).ToArray().Max(Math.Abs);
                for (int j = b; j < Math.Min(b + 32, width); j++)
                {
                    float x = rows[i][j], err = Math.Abs(fast[j] - x);
                    float bound = type switch
                    {
                        KvCacheType.F32 => 0,
                        KvCacheType.F16 => Math.Abs(x) * MathF.Pow(2, -11) + 1e-7f,
                        KvCacheType.BF16 => Math.Abs(x) * MathF.Pow(2, -8),
                        _ => amax / 127 * 0.5f * 1.01f + amax * MathF.Pow(2, -11),  // the scale itself is a half
                    };
                    Assert.True(err <= bound, $"{type} row {i} element {j}: {fast[j]} for {x} (bound {bound})");
                }
            }
        }
        // a tile of rows reads the same values as row by row
        var tile = new float[KvCache.Tile * width];
        var t = cache.Rows(512, 2, tile);
        var r513 = new float[width]; cache.Read(513, r513);
        Assert.Equal(r513, t.Slice(width, width).ToArray());
    }

    [Fact]
    public void The_cache_grows_by_chunks_as_positions_are_written()
    {
        var cache = new KvCache(KvCacheType.F16, 64, 32768);
        Assert.Equal(0, cache.AllocatedBytes);                         // a 32K-token session costs nothing up front
        var row = TestData.Gaussian(64, 1);
        for (int p = 0; p < KvCache.ChunkRows; p++) cache.Write(p, row);
        Assert.Equal(KvCache.ChunkRows * 64 * 2L, cache.AllocatedBytes);
        cache.Write(KvCache.ChunkRows, row);
        Assert.Equal(2 * KvCache.ChunkRows * 64 * 2L, cache.AllocatedBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(32768, row));
    }

    [Theory]
    [InlineData(KvCacheType.F32)]
    [InlineData(KvCacheType.F16)]
    [InlineData(KvCacheType.BF16)]
    [InlineData(KvCacheType.Q8_0)]
    public void Causal_attention_over_a_typed_cache_matches_float64_attention_over_its_values(KvCacheType type)
    {
        // MLA-like: 4 heads over one stream, keys [latent 64 ; rope 8], values the latent; 300 positions span two chunks
        int heads = 4, dk = 72, dv = 64, len = 300;
        var cache = new KvCache(type, dk, len);
        for (int j = 0; j < len; j++) cache.Write(j, TestData.Gaussian(dk, 100 + j));
        var stored = new float[len * dk];
        for (int j = 0; j < len; j++) cache.Read(j, stored.AsSpan(j * dk, dk));
        var q = TestData.Gaussian(heads * dk, 7);
        var o = new float[heads * dv];
        float scale = 0.1f;
        Attention.Causal(q, o, 1, heads, 1, dk, dv, [cache], [cache], [len - 1], scale);
        // the values are the first dv of each stored key row, as the kernel was told (same cache for K and V)
        AttentionTests.AssertFloat64Attention(q, dk, heads, dk, stored, dk, dk, dv, len, scale, o, dv, $"{type} ");
    }

    [Theory]
    [InlineData(KvCacheType.F32, 6, 2, 128, 37, 3)]      // Qwen 1.5B GQA: 12 heads over 2 KV heads, one partial tile
    [InlineData(KvCacheType.F16, 6, 2, 128, 300, 3)]     // two chunks, tiles and a partial last tile
    [InlineData(KvCacheType.F16, 6, 2, 128, 90, 41)]     // a prompt chunk of 41 rows: blocks of 10 rows, diagonal tiles masked
    [InlineData(KvCacheType.BF16, 3, 4, 64, 70, 3)]
    [InlineData(KvCacheType.Q8_0, 6, 2, 128, 97, 3)]     // each KV head starts on a Q8_0 block
    [InlineData(KvCacheType.Q8_0, 2, 3, 40, 65, 30)]     // ... and here it does not (40 % 32): whole rows are converted
    [InlineData(KvCacheType.F16, 5, 1, 20, 33, 1)]       // head dims under one 512-bit vector: tails only
    [InlineData(KvCacheType.F16, 16, 1, 64, 100, 1)]     // one decoding row, 16 heads over one stream (in lanes where they fill vectors)
    public void Grouped_query_attention_over_typed_caches_matches_float64_for_every_row(KvCacheType type, int group, int kvHeads, int hd, int len, int n)
    {
        // separate K and V caches [len, kvHeads·hd]; n rows of one sequence at the last n positions (a prompt
        // chunk), each attending to its own prefix; the values the kernel sees are what the cache stores
        int heads = group * kvHeads, width = kvHeads * hd;
        var keys = new KvCache(type, width, len, kvHeads);     // stored head by head, as LlamaSession's
        var values = new KvCache(type, width, len, kvHeads);
        for (int j = 0; j < len; j++) { keys.Write(j, TestData.Gaussian(width, 200 + j)); values.Write(j, TestData.Gaussian(width, 900 + j)); }
        var k = new float[len * width]; var v = new float[len * width];
        for (int j = 0; j < len; j++) { keys.Read(j, k.AsSpan(j * width, width)); values.Read(j, v.AsSpan(j * width, width)); }
        var q = TestData.Gaussian(n * heads * hd, 8, 2f);
        var o = new float[n * heads * hd];
        var positions = Enumerable.Range(len - n, n).ToArray();
        float scale = 1f / MathF.Sqrt(hd);
        Attention.Causal(q, o, n, heads, kvHeads, hd, hd, Enumerable.Repeat(keys, n).ToArray(), Enumerable.Repeat(values, n).ToArray(), positions, scale);
        AssertFloat64Rows(q, o, n, heads, kvHeads, hd, hd, _ => k, _ => v, positions, scale, $"{type} ");
    }

    [Theory]
    [InlineData(KvCacheType.F16, 4, 1, 72, 64, 300, 3)]    // MLA-like: one stream, values the keys' first 64; parts of 128 keys
    [InlineData(KvCacheType.F16, 16, 1, 72, 64, 300, 2)]   // V2-Lite's 16 heads: whole vectors of heads, in lanes
    [InlineData(KvCacheType.Q8_0, 3, 2, 32, 32, 100, 5)]   // GQA with separate V: parts of 32 keys, the second row's last ones empty
    [InlineData(KvCacheType.F32, 2, 2, 20, 20, 40, 2)]     // head dims under one 512-bit vector
    public void Decoding_rows_split_over_key_ranges_match_float64_for_every_row(KvCacheType type, int group, int kvHeads, int dk, int dv, int len, int parts)
    {
        // two decoding rows of two sequences (flash decoding: each (row, KV head) stream's keys in `parts` ranges,
        // combined afterwards), the second row 37 positions shorter
        int heads = group * kvHeads, kw = kvHeads * dk, vw = kvHeads * dv, n = 2;
        bool shared = kvHeads == 1 && dv < dk;                 // values are the key rows' prefix, read from the key tile
        var keyCaches = new KvCache[n]; var valueCaches = new KvCache[n];
        var k = new float[n][]; var v = new float[n][];
        for (int t = 0; t < n; t++)
        {
            keyCaches[t] = new KvCache(type, kw, len);
            valueCaches[t] = shared ? keyCaches[t] : new KvCache(type, vw, len);
            k[t] = new float[len * kw]; v[t] = new float[len * vw];
            for (int j = 0; j < len; j++)
            {
                keyCaches[t].Write(j, TestData.Gaussian(kw, 1000 * t + j));
                keyCaches[t].Read(j, k[t].AsSpan(j * kw, kw));
                if (!shared) { valueCaches[t].Write(j, TestData.Gaussian(vw, 5000 + 1000 * t + j)); valueCaches[t].Read(j, v[t].AsSpan(j * vw, vw)); }
                else k[t].AsSpan(j * kw, dv).CopyTo(v[t].AsSpan(j * vw, vw));
            }
        }
        var q = TestData.Gaussian(n * heads * dk, 9, 2f);
        var o = new float[n * heads * dv];
        int[] positions = [len - 1, len - 38];
        float scale = 1f / MathF.Sqrt(dk);
        Attention.CausalSplit(q, o, n, heads, kvHeads, dk, dv, keyCaches, valueCaches, positions, scale, parts);
        AssertFloat64Rows(q, o, n, heads, kvHeads, dk, dv, t => k[t], t => v[t], positions, scale, $"{type} ");
    }

    /// <summary>
    /// o[t, h, :dv] against softmax_j(scale · q[t, h] · k_j) v_j in float64 over j ≤ positions[t], for every row t and
    /// head h: k_j the dk values of KV head h / (heads / kvHeads) in row j of keysOf(t) [·, kvHeads·dk], v_j likewise in
    /// valuesOf(t) [·, kvHeads·dv].
    /// </summary>
    private static void AssertFloat64Rows(float[] q, float[] o, int n, int heads, int kvHeads, int dk, int dv,
        Func<int, float[]> keysOf, Func<int, float[]> valuesOf, int[] positions, float scale, string label)
    {
        int group = heads / kvHeads, kw = kvHeads * dk, vw = kvHeads * dv;
        for (int t = 0; t < n; t++)
        {
            float[] k = keysOf(t), v = valuesOf(t);
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / group, rows = positions[t] + 1;
                var s = new double[rows];
                for (int j = 0; j < rows; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < dk; d++) dot += (double)q[(t * heads + h) * dk + d] * k[j * kw + kvh * dk + d];
                    s[j] = dot * scale;
                }
                double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                for (int d = 0; d < dv; d++)
                {
                    double expect = 0;
                    for (int j = 0; j < rows; j++) expect += Math.Exp(s[j] - max) / sum * v[j * vw + kvh * dv + d];
                    float got = o[(t * heads + h) * dv + d];
                    Assert.True(Math.Abs(got - expect) <= 2e-5 + 2e-5 * Math.Abs(expect), $"{label}row {t} head {h} dim {d}: {got} vs {expect}");
                }
            }
        }
    }

    [Theory]
    [InlineData(KvCacheType.F16, 6, 2, 64, false)]     // GQA: each sequence's own K and V caches
    [InlineData(KvCacheType.Q8_0, 4, 1, 72, true)]     // MLA-like: one latent stream, values its first 64 columns
    public void Decoding_several_sequences_matches_float64_attention_for_every_row(KvCacheType type, int group, int kvHeads, int dk, bool latent)
    {
        // one row per sequence (a batched decoding step): each row its own caches and position, so every work item is
        // one row whose heads' queries and outputs are used in place in q and o
        int heads = group * kvHeads, dv = latent ? 64 : dk, kw = kvHeads * dk, vw = kvHeads * dv;
        int[] positions = [40, 0, 99, 31, 64];
        int n = positions.Length;
        var keys = new KvCache[n]; var values = new KvCache[n];
        var k = new float[n][]; var v = new float[n][];
        for (int t = 0; t < n; t++)
        {
            int len = positions[t] + 1;
            keys[t] = new KvCache(type, kw, len, latent ? 1 : kvHeads);
            values[t] = latent ? keys[t] : new KvCache(type, vw, len, kvHeads);
            for (int j = 0; j < len; j++)
            {
                keys[t].Write(j, TestData.Gaussian(kw, 1000 * t + j));
                if (!latent) values[t].Write(j, TestData.Gaussian(vw, 1000 * t + 500 + j));
            }
            k[t] = new float[len * kw]; v[t] = new float[len * vw];
            var row = new float[kw];
            for (int j = 0; j < len; j++)
            {
                keys[t].Read(j, row);
                row.AsSpan(0, kw).CopyTo(k[t].AsSpan(j * kw));
                if (latent) row.AsSpan(0, dv).CopyTo(v[t].AsSpan(j * vw));
                else values[t].Read(j, v[t].AsSpan(j * vw, vw));
            }
        }
        var q = TestData.Gaussian(n * heads * dk, 9, 2f);
        var o = new float[n * heads * dv];
        float scale = 1f / MathF.Sqrt(dk);
        Attention.Causal(q, o, n, heads, kvHeads, dk, dv, keys, values, positions, scale);
        AssertFloat64Rows(q, o, n, heads, kvHeads, dk, dv, t => k[t], t => v[t], positions, scale, $"{type} ");
    }

    /// <summary>
    /// A row of several KV heads stored head by head holds the same bytes and reads the same values as the row stored
    /// whole: every reader (a row, whole-row tiles across heads, a head's columns, columns inside a head), over three
    /// chunks; where the heads do not split a row into whole Q8_0 blocks, or the width into equal heads, it is stored whole.
    /// </summary>
    [Theory]
    [InlineData(KvCacheType.F32, 4, 20)]
    [InlineData(KvCacheType.F16, 2, 128)]
    [InlineData(KvCacheType.BF16, 3, 40)]
    [InlineData(KvCacheType.Q8_0, 2, 64)]
    public void Heads_stored_apart_read_as_whole_rows(KvCacheType type, int heads, int hw)
    {
        int width = heads * hw, len = 600;
        var whole = new KvCache(type, width, len);
        var apart = new KvCache(type, width, len, heads);
        Assert.Equal(heads, apart.Heads);
        Assert.Equal(whole.RowBytes, apart.RowBytes);
        for (int j = 0; j < len; j++) { var x = TestData.Gaussian(width, 300 + j); whole.Write(j, x); apart.Write(j, x); }
        Assert.Equal(whole.AllocatedBytes, apart.AllocatedBytes);
        foreach (int j in new[] { 0, 255, 256, 599 })
        {
            Assert.Equal(whole.RowBytesAt(j).ToArray(), apart.RowBytesAt(j).ToArray());
            var a = new float[width]; var b = new float[width];
            whole.Read(j, a); apart.Read(j, b);
            Assert.Equal(a, b);
        }
        foreach (var (col, cols) in new[] { (0, width), (0, hw), ((heads - 1) * hw, hw), (hw, type == KvCacheType.Q8_0 ? 32 : hw / 2), (hw / 2 / 32 * 32, hw) })
        {
            if (type == KvCacheType.Q8_0 && col % 32 != 0) continue;
            var a = whole.Rows(512, KvCache.Tile, new float[KvCache.Tile * width], col, cols, out int sa);
            var b = apart.Rows(512, KvCache.Tile, new float[KvCache.Tile * width], col, cols, out int sb);
            for (int r = 0; r < KvCache.Tile; r++)
                Assert.Equal(a.Slice(r * sa, cols).ToArray(), b.Slice(r * sb, cols).ToArray());
        }
        Assert.Equal(1, new KvCache(KvCacheType.Q8_0, 2 * 48, len, 2).Heads);   // heads of 48: not whole blocks
        Assert.Equal(1, new KvCache(KvCacheType.F16, 100, len, 3).Heads);      // 100 does not split in 3
    }

    [Theory]
    [InlineData(KvCacheType.F16, 64, 32, 32)]
    [InlineData(KvCacheType.Q8_0, 96, 32, 64)]
    [InlineData(KvCacheType.BF16, 37, 5, 17)]
    public void Column_tiles_equal_the_same_columns_of_whole_rows(KvCacheType type, int width, int col, int cols)
    {
        var cache = new KvCache(type, width, 64);
        for (int j = 0; j < 64; j++) cache.Write(j, TestData.Gaussian(width, 50 + j));
        var whole = cache.Rows(32, 32, new float[32 * width]).ToArray();
        var part = cache.Rows(32, 32, new float[32 * cols], col, cols, out int stride).ToArray();
        Assert.Equal(cols, stride);
        for (int j = 0; j < 32; j++)
            Assert.Equal(whole.AsSpan(j * width + col, cols).ToArray(), part.AsSpan(j * stride, cols).ToArray());
        if (type == KvCacheType.Q8_0)
            Assert.Throws<ArgumentOutOfRangeException>(() => cache.Rows(0, 1, new float[width], 16, 16, out _));
    }
}
