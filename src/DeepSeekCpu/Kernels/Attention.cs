using System.Numerics.Tensors;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Causal attention for a batch of rows on the worker pool. Each row is one query token of some sequence: it attends
/// to positions 0..positions[t] of its own sequence's cache, so the rows of a prompt chunk (one sequence at
/// consecutive positions) and of a batched decoding step (one row per sequence) take the same path. The per-item
/// math is <see cref="Ops.Attention"/>'s; this class splits (row, group of heads) items across threads and reads the
/// caches tile by tile in their stored type.
/// </summary>
internal static class Attention
{
    /// <summary>
    /// Query heads per attention work item: the largest divisor of <paramref name="group"/> (heads sharing one
    /// key/value stream) that still gives every one of <paramref name="threads"/> threads an item, with
    /// <paramref name="streams"/> streams per token.
    /// </summary>
    public static int HeadsPerItem(int group, int streams, int threads)
    {
        for (int g = group; g > 1; g--)
            if (group % g == 0 && streams * (group / g) >= threads) return g;
        return 1;
    }

    /// <summary>
    /// Grouped-query attention (multi-query when <paramref name="kvHeads"/> is 1), n rows:
    /// o[t, h, :dv] = Σ_j softmax_j(scale · q[t, h, :dk] · k_j) v_j over j ≤ positions[t], with key j of KV head g
    /// the values g * dk .. + dk of row j of keys[t] and its value the values g * dv .. + dv of row j of values[t];
    /// query head h reads KV head h / (heads / kvHeads). q is [n, heads, dk], o [n, heads, dv].
    /// Llama's GQA: keys/values are the K and V caches ([ctx, kvHeads * hd]). MLA absorbed: one stream, keys are the
    /// latent cache rows [c_kv ; k_pe] and values their first kvl values. Caches of any <see cref="KvCacheType"/> are
    /// read as float32 tiles (<see cref="KvCache.Rows(int, int, Span{float})"/>); the softmax is kept online over the tiles
    /// (<see cref="CausalJob"/>), so results equal <see cref="Ops.Attention"/>'s up to the order of float additions.
    /// </summary>
    public static void Causal(float[] q, float[] o, int n, int heads, int kvHeads, int dk, int dv,
        KvCache[] keys, KvCache[] values, int[] positions, float scale)
    {
        if (n <= 0) return;
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads do not split into {kvHeads} KV heads");
        if (q.Length < (long)n * heads * dk || o.Length < (long)n * heads * dv || keys.Length < n || values.Length < n || positions.Length < n)
            throw new ArgumentException("attention buffers are smaller than n rows");
        int threads = WorkerPool.Shared.ThreadCount, group = heads / kvHeads;
        bool decoding = n == 1 || !OneSequence(keys, values, positions, n);
        if (decoding)
        {
            // Decoding rows: every (row, KV head) is a stream of its own. Fewer streams than threads: each stream's
            // keys are split between items (flash decoding) rather than its query heads, which would have every item
            // convert and read the whole context (MLA's one latent stream: all heads, every item, at 2 threads twice).
            int streams = n * kvHeads, shortest = int.MaxValue;
            for (int t = 0; t < n; t++) shortest = Math.Min(shortest, positions[t] + 1);
            int parts = streams >= threads ? 1 : Math.Min((threads + streams - 1) / streams, shortest / MinSplitKeys);
            if (parts > 1) { CausalSplit(q, o, n, heads, kvHeads, dk, dv, keys, values, positions, scale, parts); return; }
        }
        var job = _causal ??= new CausalJob();
        job.Q = q; job.O = o; job.Heads = heads; job.KvHeads = kvHeads; job.Dk = dk; job.Dv = dv;
        job.Keys = keys; job.Values = values; job.Positions = positions; job.Scale = scale;
        job.HeadsPerItem = HeadsPerItem(group, decoding ? n * kvHeads : kvHeads, threads);
        // rows of one sequence at consecutive positions (a prompt chunk) share their keys: blocks of rows per item, so
        // each key tile is converted and loaded once for up to 64 queries; rows of several sequences: one per item
        job.N = n;
        job.BlockRows = decoding ? 1 : Math.Max(1, 64 / job.HeadsPerItem);
        int blocks = (n + job.BlockRows - 1) / job.BlockRows;
        try { WorkerPool.Shared.Run(job, blocks * (heads / job.HeadsPerItem), grain: 1); }
        finally { job.Q = job.O = null!; job.Keys = job.Values = null!; job.Positions = null!; }
    }

    /// <summary>
    /// MLA's naive (expanded) attention for n rows of one sequence at positions start..start+n-1
    /// (model.py attn_impl "naive") over per-head keys and values laid out by <see cref="ToHeads"/>: head h's key j
    /// [k_nope_j ; k_pe_j] at kvHeads[(h·cap + j)·dk ..], its value at kvHeads[heads·cap·dk + (h·cap + j)·v ..];
    /// o[t, h, :v] = Σ_j softmax_j(scale · q_h · k_j) v_j over j ≤ start + t. q is [n, heads, dk], o [n, heads, v].
    /// </summary>
    public static void Expanded(float[] q, float[] o, int n, int start, int heads, int dk, int v, float[] kvHeads, int cap, float scale)
    {
        if (n <= 0) return;
        if (q.Length < (long)n * heads * dk || o.Length < (long)n * heads * v || cap < start + n || kvHeads.Length < (long)heads * cap * (dk + v))
            throw new ArgumentException("attention buffers are smaller than n rows");
        var job = _expanded ??= new ExpandedJob();
        job.Q = q; job.O = o; job.Start = start; job.Heads = heads; job.Dk = dk; job.V = v;
        job.Kv = kvHeads; job.Cap = cap; job.Scale = scale;
        job.N = n;
        try { WorkerPool.Shared.Run(job, heads * ((n + ExpandedJob.Rows - 1) / ExpandedJob.Rows), grain: 1); }
        finally { job.Q = job.O = job.Kv = null!; }
    }

    /// <summary>Fewest keys a part of a split decoding stream gets (below it the split's dispatch and combine cost more).</summary>
    internal const int MinSplitKeys = 256;

    /// <summary>
    /// Decoding rows with each (row, KV head) stream's keys split into <paramref name="parts"/> ranges of whole tiles:
    /// one item per (stream, range) with all of the stream's query heads (<see cref="AttentionTile.FlashPartial"/>),
    /// then per stream the parts combined (<see cref="AttentionTile.Combine"/>).
    /// </summary>
    internal static void CausalSplit(float[] q, float[] o, int n, int heads, int kvHeads, int dk, int dv,
        KvCache[] keys, KvCache[] values, int[] positions, float scale, int parts)
    {
        var job = _split ??= new SplitJob();
        int group = heads / kvHeads, items = n * kvHeads * parts;
        job.Q = q; job.Heads = heads; job.KvHeads = kvHeads; job.Dk = dk; job.Dv = dv; job.Parts = parts;
        job.Keys = keys; job.Values = values; job.Positions = positions; job.Scale = scale;
        Grow(ref job.PartO, items * group * dv);
        Grow(ref job.PartM, items * group);
        Grow(ref job.PartL, items * group);
        try { WorkerPool.Shared.Run(job, items, grain: 1); }
        finally { job.Q = null!; job.Keys = job.Values = null!; job.Positions = null!; }
        unsafe
        {
            fixed (float* po = job.PartO, pm = job.PartM, pl = job.PartL, out0 = o)
                for (int stream = 0; stream < n * kvHeads; stream++)
                {
                    int first = stream * parts;                                  // its parts' items
                    int t = stream / kvHeads, kvh = stream % kvHeads;
                    AttentionTile.Combine(po + (long)first * group * dv, pm + first * group, pl + first * group, parts, group * dv,
                        group, dv, out0 + ((long)t * heads + kvh * group) * dv);
                }
        }
    }

    private static bool OneSequence(KvCache[] keys, KvCache[] values, int[] positions, int n)
    {
        for (int t = 1; t < n; t++)
            if (!ReferenceEquals(keys[t], keys[0]) || !ReferenceEquals(values[t], values[0]) || positions[t] != positions[0] + t) return false;
        return true;
    }

    [ThreadStatic] private static CausalJob? _causal;
    [ThreadStatic] private static SplitJob? _split;
    [ThreadStatic] private static ExpandedJob? _expanded;

    /// <summary>
    /// One (block of rows, group of query heads sharing a KV head) per item, over the rows' cache a tile of
    /// <see cref="KvCache.Tile"/> positions at a time with the softmax kept online (<see cref="AttentionTile.Flash"/>:
    /// flash attention's recurrence, a running maximum M and denominator L per query; when a tile raises M, what was
    /// summed so far is rescaled by exp(M_old − M_new)), so each tile is converted from its stored type once per item,
    /// the value pass reuses the key tile where values are a prefix of the keys (MLA's latent rows), and the scratch is
    /// a tile, not the context. Only the item's KV head's columns are converted
    /// (<see cref="KvCache.Rows(int, int, Span{float}, int, int, out int)"/>).
    /// A block is one row (decoding several sequences: its heads' queries and outputs are contiguous in Q and O and
    /// are used in place) or <see cref="BlockRows"/> consecutive rows of one sequence (a prompt chunk: gathered into
    /// [rows, G, Dk]): its rows × heads queries share each key tile, and keys past a row's own position are masked.
    /// </summary>
    private sealed unsafe class CausalJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _q, _o;
        public float[] Q = null!, O = null!;
        public KvCache[] Keys = null!, Values = null!;
        public int[] Positions = null!;
        public int N, Heads, KvHeads, Dk, Dv, HeadsPerItem, BlockRows;
        public float Scale;

        public void Run(int first, int end)
        {
            int G = HeadsPerItem, itemsPerBlock = Heads / G, group = Heads / KvHeads;
            for (int item = first; item < end; item++)
            {
                int t0 = item / itemsPerBlock * BlockRows, h0 = item % itemsPerBlock * G, kvh = h0 / group;
                int r = Math.Min(BlockRows, N - t0);
                var tiles = new CacheTiles(Keys[t0], Values[t0], Positions, t0, kvh, KvHeads, Dk, Dv);
                if (r == 1)
                {
                    fixed (float* q = &Q[(t0 * Heads + h0) * Dk], o = &O[(t0 * Heads + h0) * Dv])
                        AttentionTile.Flash(ref tiles, q, 1, G, Dk, Dv, Scale, o);
                    continue;
                }
                var qBlock = Grow(ref _q, r * G * Dk);                  // [r, G, Dk] the item's queries
                var oBlock = Grow(ref _o, r * G * Dv);                  // [r, G, Dv]
                for (int i = 0; i < r; i++) Q.AsSpan(((t0 + i) * Heads + h0) * Dk, G * Dk).CopyTo(qBlock.AsSpan(i * G * Dk));
                fixed (float* q = qBlock, o = oBlock) AttentionTile.Flash(ref tiles, q, r, G, Dk, Dv, Scale, o);
                for (int i = 0; i < r; i++) oBlock.AsSpan(i * G * Dv, G * Dv).CopyTo(O.AsSpan(((t0 + i) * Heads + h0) * Dv));
            }
        }
    }

    /// <summary>
    /// One (row, KV head, range of keys) per item, all the KV head's query heads over the range's tiles
    /// (<see cref="AttentionTile.FlashPartial"/>): part p of a row that sees len positions takes the whole tiles
    /// [p·per, (p+1)·per) with per = len / parts rounded up to <see cref="KvCache.Tile"/> (the last parts may be empty).
    /// </summary>
    private sealed unsafe class SplitJob : IRangeJob
    {
        public float[] Q = null!;
        public float[]? PartO, PartM, PartL;                     // [items, group, dv], [items, group], [items, group]
        public KvCache[] Keys = null!, Values = null!;
        public int[] Positions = null!;
        public int Heads, KvHeads, Dk, Dv, Parts;
        public float Scale;

        public void Run(int first, int end)
        {
            int group = Heads / KvHeads, T = KvCache.Tile;
            for (int item = first; item < end; item++)
            {
                int part = item % Parts, stream = item / Parts, t = stream / KvHeads, kvh = stream % KvHeads;
                int len = Positions[t] + 1, per = ((len + Parts - 1) / Parts + T - 1) / T * T;
                var range = new KeyRange<CacheTiles>(new CacheTiles(Keys[t], Values[t], Positions, t, kvh, KvHeads, Dk, Dv),
                    part * per, Math.Min(len, (part + 1) * per));
                fixed (float* q = &Q[(t * Heads + kvh * group) * Dk], o = &PartO![item * group * Dv], m = &PartM![item * group], l = &PartL![item * group])
                    AttentionTile.FlashPartial(ref range, q, group, Dk, Dv, Scale, o, m, l);
            }
        }
    }

    /// <summary>The keys [begin, end) of a source, as positions 0 .. end − begin − 1 of one query row.</summary>
    private readonly struct KeyRange<TSource>(TSource inner, int begin, int end) : AttentionTile.ITileSource
        where TSource : struct, AttentionTile.ITileSource
    {
        private readonly TSource _inner = inner;

        public int Visible(int row) => Math.Max(0, Math.Min(_inner.Visible(row), end) - begin);

        public ReadOnlySpan<float> Keys(int j0, int n, out int stride) => _inner.Keys(begin + j0, n, out stride);

        public ReadOnlySpan<float> Values(int j0, int n, ReadOnlySpan<float> keys, int keyStride, out int stride) =>
            _inner.Values(begin + j0, n, keys, keyStride, out stride);
    }

    /// <summary>
    /// The tiles of one KV head of a key cache and a value cache, for rows t0.. of the block (row i sees positions
    /// 0..positions[t0 + i]): only the head's columns [kvh·d, +d) are converted, or (a Q8_0 head not on a block) whole
    /// rows with the head's columns addressed in them; MLA's values, the first dv columns of the same single-stream
    /// key rows, are read from the key tile.
    /// </summary>
    private readonly struct CacheTiles(KvCache keys, KvCache values, int[] positions, int t0, int kvh, int kvHeads, int dk, int dv)
        : AttentionTile.ITileSource
    {
        [ThreadStatic] private static float[]? _kTile, _vTile, _whole;
        private readonly float[] _keyTile = Grow(ref _kTile, KvCache.Tile * dk);     // [T, dk] keys of this KV head
        private readonly float[] _valueTile = Grow(ref _vTile, KvCache.Tile * dv);   // [T, dv] its values
        private readonly bool _valuesInKeys = ReferenceEquals(keys, values) && kvHeads == 1 && dv <= dk;
        private readonly int _kCol = keys.Type == KvCacheType.Q8_0 && kvh * dk % 32 != 0 ? -1 : kvh * dk;
        private readonly int _vCol = values.Type == KvCacheType.Q8_0 && kvh * dv % 32 != 0 ? -1 : kvh * dv;

        public int Visible(int row) => positions[t0 + row] + 1;

        public ReadOnlySpan<float> Keys(int j0, int n, out int stride) => TileOf(keys, j0, n, _kCol, dk, kvh, _keyTile, out stride);

        public ReadOnlySpan<float> Values(int j0, int n, ReadOnlySpan<float> keyTile, int keyStride, out int stride)
        {
            if (_valuesInKeys) { stride = keyStride; return keyTile; }
            return TileOf(values, j0, n, _vCol, dv, kvh, _valueTile, out stride);
        }

        /// <summary>Rows j0..j0+n-1 of a head's columns [head·d, +d) (col = −1: whole rows, the head's columns addressed in them).</summary>
        private static ReadOnlySpan<float> TileOf(KvCache cache, int j0, int n, int col, int d, int head, float[] tile, out int stride)
        {
            if (col >= 0) return cache.Rows(j0, n, tile, col, d, out stride);
            var whole = cache.Rows(j0, n, Grow(ref _whole, KvCache.Tile * cache.Width), 0, cache.Width, out stride);
            return whole[(head * d)..];
        }
    }

    /// <summary>
    /// Lays out tokens t0 .. t0 + m − 1 of MLA's expansion for <see cref="Expanded"/>: slice is the product
    /// kv_b · c for those tokens, [m, heads, nope + v] (k_nope then v of each head), and the rope keys of token j are
    /// peCache[peOffset + j·peStride ..][..rope]. Head h's key [k_nope ; k_pe] goes to kvHeads[(h·cap + j)·(nope + rope) ..]
    /// and its value to kvHeads[heads·cap·(nope + rope) + (h·cap + j)·v ..]: each head's keys and values contiguous, so
    /// attention reads its tiles in place, where the product's own rows put a head's consecutive keys heads·(nope + v)
    /// floats apart (16 KB on V2-Lite: a gather copy and a TLB miss per key, per query block and head).
    /// </summary>
    public static void ToHeads(float[] slice, int m, int t0, int cap, int heads, int nope, int rope, int v,
        float[] peCache, int peOffset, int peStride, float[] kvHeads)
    {
        if (m <= 0) return;
        if (t0 + m > cap || slice.Length < (long)m * heads * (nope + v) || kvHeads.Length < (long)heads * cap * (nope + rope + v)
            || peCache.Length < peOffset + (long)(t0 + m - 1) * peStride + rope)
            throw new ArgumentException("expanded attention buffers are smaller than the tokens laid out");
        var job = _toHeads ??= new ToHeadsJob();
        job.Slice = slice; job.Pe = peCache; job.Out = kvHeads;
        job.T0 = t0; job.Cap = cap; job.Heads = heads; job.Nope = nope; job.Rope = rope; job.V = v; job.PeOffset = peOffset; job.PeStride = peStride;
        try { WorkerPool.Shared.Run(job, m, grain: 16); }
        finally { job.Slice = job.Pe = job.Out = null!; }
    }

    [ThreadStatic] private static ToHeadsJob? _toHeads;

    private sealed class ToHeadsJob : IRangeJob
    {
        public float[] Slice = null!, Pe = null!, Out = null!;
        public int T0, Cap, Heads, Nope, Rope, V, PeOffset, PeStride;

        public void Run(int first, int end)
        {
            int dk = Nope + Rope, row = Nope + V;
            long values = (long)Heads * Cap * dk;
            for (int t = first; t < end; t++)
            {
                int j = T0 + t;
                var pe = Pe.AsSpan(PeOffset + j * PeStride, Rope);
                for (int h = 0; h < Heads; h++)
                {
                    var src = Slice.AsSpan((t * Heads + h) * row, row);
                    long k = ((long)h * Cap + j) * dk;
                    src[..Nope].CopyTo(Out.AsSpan((int)k, Nope));
                    pe.CopyTo(Out.AsSpan((int)k + Nope, Rope));
                    src[Nope..].CopyTo(Out.AsSpan((int)(values + ((long)h * Cap + j) * V), V));
                }
            }
        }
    }

    /// <summary>
    /// One (head, block of <see cref="Rows"/> query rows) per item, flash attention over key tiles of
    /// <see cref="KvCache.Tile"/> (<see cref="AttentionTile.Flash"/>): the block's queries stand where a GQA group's
    /// heads stand in <see cref="CausalJob"/>, the head's keys and values read in place (<see cref="ToHeads"/>'s
    /// layout); on the tiles that cross the diagonal, keys past a row's own position are masked (−∞ before the softmax).
    /// </summary>
    private sealed unsafe class ExpandedJob : IRangeJob
    {
        /// <summary>
        /// Query rows per item: 64 fill the four 512-bit query vectors of the block path's register tile
        /// (<see cref="AttentionTile.Flash"/>; 16 left it to a one-vector loop); a 512-row chunk still makes heads × 8 items.
        /// </summary>
        public const int Rows = 64;
        [ThreadStatic] private static float[]? _q, _o;
        public float[] Q = null!, O = null!, Kv = null!;
        public int N, Start, Heads, Dk, V, Cap;
        public float Scale;

        public void Run(int first, int end)
        {
            int H = Heads, dk = Dk, v = V;
            var qBlock = Grow(ref _q, Rows * dk);                     // [Rows, dk] the block's queries of head h
            var oBlock = Grow(ref _o, Rows * v);                      // [Rows, v]
            int blocks = (N + Rows - 1) / Rows;
            for (int item = first; item < end; item++)
            {
                int h = item / blocks, t0 = item % blocks * Rows, g = Math.Min(Rows, N - t0);
                for (int r = 0; r < g; r++) Q.AsSpan(((t0 + r) * H + h) * dk, dk).CopyTo(qBlock.AsSpan(r * dk, dk));
                var tiles = new ExpandedTiles(this, h, Start + t0);
                fixed (float* q = qBlock, o = oBlock) AttentionTile.Flash(ref tiles, q, g, 1, dk, v, Scale, o);
                for (int r = 0; r < g; r++) oBlock.AsSpan(r * v, v).CopyTo(O.AsSpan(((t0 + r) * H + h) * v, v));
            }
        }

        /// <summary>Head h's keys and values as <see cref="ToHeads"/> laid them out, read in place, for rows at positions p0, p0 + 1, ...</summary>
        private readonly struct ExpandedTiles(ExpandedJob job, int h, int p0) : AttentionTile.ITileSource
        {
            public int Visible(int row) => p0 + row + 1;

            public ReadOnlySpan<float> Keys(int j0, int n, out int stride)
            {
                stride = job.Dk;
                return job.Kv.AsSpan((int)(((long)h * job.Cap + j0) * job.Dk), n * job.Dk);
            }

            public ReadOnlySpan<float> Values(int j0, int n, ReadOnlySpan<float> keys, int keyStride, out int stride)
            {
                stride = job.V;
                return job.Kv.AsSpan((int)((long)job.Heads * job.Cap * job.Dk + ((long)h * job.Cap + j0) * job.V), n * job.V);
            }
        }
    }

    private static float[] Grow(ref float[]? buffer, int length) => AttentionTile.Grow(ref buffer, length);
}
