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
    /// <see cref="AttentionTile.Flash"/> with the online softmax, as <see cref="Attention.Causal"/> does over contiguous
    /// rows; the row's heads' queries and outputs are used in place.
    /// </summary>
    private sealed unsafe class SelectedJob : IRangeJob
    {
        public float[] Q = null!, O = null!;
        public KvCache[] Caches = null!;
        public int[] Indices = null!, Counts = null!;
        public int Heads, Dk, Dv, Stride, HeadsPerItem;
        public float Scale;

        public void Run(int first, int end)
        {
            int G = HeadsPerItem, itemsPerRow = Heads / G;
            for (int item = first; item < end; item++)
            {
                int t = item / itemsPerRow, h0 = item % itemsPerRow * G;
                var tiles = new SelectedRows(Caches[t], t * Stride, Counts[t], Indices);
                fixed (float* q = &Q[(t * Heads + h0) * Dk], o = &O[(t * Heads + h0) * Dv])
                    AttentionTile.Flash(ref tiles, q, 1, G, Dk, Dv, Scale, o);
            }
        }
    }

    /// <summary>
    /// Rows indices[offset ..][..count] of a cache, in that order, gathered a tile at a time (each row converted once);
    /// values are the first dv of the same rows.
    /// </summary>
    private readonly struct SelectedRows(KvCache cache, int offset, int count, int[] indices) : AttentionTile.ITileSource
    {
        [ThreadStatic] private static float[]? _rows;
        private readonly float[] _tile = AttentionTile.Grow(ref _rows, KvCache.Tile * cache.Width);   // [T, width] the gathered rows

        public int Visible(int row) => count;

        public ReadOnlySpan<float> Keys(int j0, int n, out int stride)
        {
            int width = stride = cache.Width;
            for (int i = 0; i < n; i++) cache.Read(indices[offset + j0 + i], _tile.AsSpan(i * width, width));
            return _tile;
        }

        public ReadOnlySpan<float> Values(int j0, int n, ReadOnlySpan<float> keys, int keyStride, out int stride)
        {
            stride = keyStride;
            return keys;
        }
    }
}
