using System.Numerics.Tensors;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Attention over chosen cache rows only: DeepSeek Sparse Attention on MLA's latent cache (DeepSeek-V3.2-Exp
/// inference/model.py MLA.forward, whose index mask is −∞ outside the indexer's top-k, so the softmax runs over the
/// selected positions alone). All heads share one stream, as in absorbed MLA: keys are cache rows [c_kv ; k_pe], values
/// their first dv values.
/// </summary>
internal static class SparseAttention
{
    /// <summary>
    /// o[t, h, :dv] = Σ_{j ∈ S_t} softmax_j(scale · q[t, h, :dk] · row_j[:dk]) row_j[:dv] for n rows, with S_t the
    /// counts[t] positions at indices[t * stride ..] and row_j row j of caches[t]. q is [n, heads, dk], o [n, heads, dv].
    /// </summary>
    public static void Selected(float[] q, float[] o, int n, int heads, int dk, int dv, KvCache[] caches,
        int[] indices, int[] counts, int stride, float scale)
    {
        if (n <= 0) return;
        if (q.Length < (long)n * heads * dk || o.Length < (long)n * heads * dv || caches.Length < n
            || counts.Length < n || indices.Length < (long)(n - 1) * stride + counts[n - 1])
            throw new ArgumentException("sparse attention buffers are smaller than n rows");
        var job = _job ??= new SelectedJob();
        job.Q = q; job.O = o; job.Heads = heads; job.Dk = dk; job.Dv = dv; job.Caches = caches;
        job.Indices = indices; job.Counts = counts; job.Stride = stride; job.Scale = scale;
        job.HeadsPerItem = Attention.HeadsPerItem(heads, 1, WorkerPool.Shared.ThreadCount);
        try { WorkerPool.Shared.Run(job, n * (heads / job.HeadsPerItem), grain: 1); }
        finally { job.Q = job.O = null!; job.Caches = null!; job.Indices = job.Counts = null!; }
    }

    [ThreadStatic] private static SelectedJob? _job;

    /// <summary>
    /// One (row, group of heads) per item: the selected rows gathered <see cref="KvCache.Tile"/> at a time into one
    /// float32 tile (each converted once; values are the first dv of the same rows), scored and summed by
    /// <see cref="AttentionTile"/> with the online softmax, as <see cref="Attention.Causal"/> does over contiguous rows.
    /// </summary>
    private sealed unsafe class SelectedJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores, _tile, _max, _sum;
        public float[] Q = null!, O = null!;
        public KvCache[] Caches = null!;
        public int[] Indices = null!, Counts = null!;
        public int Heads, Dk, Dv, Stride, HeadsPerItem;
        public float Scale;

        public void Run(int first, int end)
        {
            int G = HeadsPerItem, itemsPerRow = Heads / G, T = KvCache.Tile;
            for (int item = first; item < end; item++)
            {
                int t = item / itemsPerRow, h0 = item % itemsPerRow * G, count = Counts[t];
                var cache = Caches[t];
                int width = cache.Width;
                var scores = Grow(ref _scores, G * T);                       // [G, T]
                var tile = Grow(ref _tile, T * width);                       // [T, width] the gathered rows
                var max = Grow(ref _max, G); var sum = Grow(ref _sum, G);
                var selected = Indices.AsSpan(t * Stride, count);
                fixed (float* q = &Q[(t * Heads + h0) * Dk], o = &O[(t * Heads + h0) * Dv], s = scores, rows = tile, m = max, l = sum)
                {
                    AttentionTile.Begin(o, m, l, G, Dv);
                    // in ascending position order, a tile of selected rows at a time
                    for (int i0 = 0; i0 < count; i0 += T)
                    {
                        int n = Math.Min(T, count - i0);
                        for (int i = 0; i < n; i++) cache.Read(selected[i0 + i], tile.AsSpan(i * width, width));
                        AttentionTile.Scores(q, G, Dk, rows, n, width, Scale, s, T);
                        AttentionTile.Softmax(s, T, n, m, l, o, G, Dv);
                        AttentionTile.Accumulate(s, T, G, rows, n, width, Dv, o);
                    }
                    AttentionTile.End(o, l, G, Dv);
                }
            }
        }

        private static float[] Grow(ref float[]? buffer, int length) =>
            buffer is { } b && b.Length >= length ? b : (buffer = new float[length]);
    }
}
