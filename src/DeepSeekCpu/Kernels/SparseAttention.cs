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

    /// <summary>One (row, group of heads) per item: each selected row is read once per group, twice in all.</summary>
    private sealed class SelectedJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores, _row;
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
                int t = item / itemsPerRow, h0 = item % itemsPerRow * G, count = Counts[t];
                var cache = Caches[t];
                var selected = Indices.AsSpan(t * Stride, count);
                var scores = (_scores is { } s && s.Length >= G * count ? s : (_scores = new float[Math.Max(G * count, 256) * 2])).AsSpan(0, G * count);
                var scratch = (_row is { } r && r.Length >= cache.Width ? r : (_row = new float[cache.Width])).AsSpan();
                var q = Q.AsSpan((t * Heads + h0) * Dk, G * Dk);
                var o = O.AsSpan((t * Heads + h0) * Dv, G * Dv);

                // scores[g, i] = scale · q_g · row_{S_t[i]}
                for (int i = 0; i < count; i++)
                {
                    var key = cache.Rows(selected[i], 1, scratch)[..Dk];
                    for (int g = 0; g < G; g++) scores[g * count + i] = TensorPrimitives.Dot(q.Slice(g * Dk, Dk), key) * Scale;
                }
                for (int g = 0; g < G; g++) Ops.Softmax(scores.Slice(g * count, count));
                o.Clear();
                // o_g = Σ_i p[g, i] row_{S_t[i]}[:dv], in ascending position order
                for (int i = 0; i < count; i++)
                {
                    var value = cache.Rows(selected[i], 1, scratch)[..Dv];
                    for (int g = 0; g < G; g++)
                    {
                        var og = o.Slice(g * Dv, Dv);
                        TensorPrimitives.MultiplyAdd(value, scores[g * count + i], og, og);
                    }
                }
            }
        }
    }
}
