using System.Numerics.Tensors;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// DeepSeek-V4's attention (DeepSeek-V4-Flash inference/model.py Attention.forward and kernel.py sparse_attn): one
/// latent KV row per key serves as both key and value for every head (multi-query, K = V), each query row attends to
/// its sliding window of recent rows plus a list of compressed entries, and each head has a learned sink logit that
/// joins the softmax's denominator without a value:
///   o[t, h] = Σ_j exp(s_j − m) kv_j / (Σ_j exp(s_j − m) + exp(sink_h − m)),  s_j = scale · q[t, h] · kv_j, m = max_j s_j.
/// Keys of row t: window positions max(0, pos − window + 1) .. pos, read from a ring of window.Capacity slots
/// (slot = position mod capacity), then compressed entries indices[t * stride ..][..counts[t]] of its compressed cache.
/// </summary>
internal static class SinkAttention
{
    /// <summary>
    /// o [n, heads, d] for q [n, heads, d]; windows[t] / compressed[t] are row t's caches (compressed may be null
    /// where counts[t] is 0), positions[t] its position, sinks [heads].
    /// </summary>
    public static void Attend(float[] q, float[] o, int n, int heads, int d, KvCache[] windows, int window, int[] positions,
        KvCache?[] compressed, int[] indices, int[] counts, int stride, float[] sinks, float scale)
    {
        if (n <= 0) return;
        if (q.Length < (long)n * heads * d || o.Length < (long)n * heads * d || windows.Length < n || compressed.Length < n
            || positions.Length < n || counts.Length < n || sinks.Length < heads || indices.Length < (long)(n - 1) * stride + counts[n - 1])
            throw new ArgumentException("sink attention buffers are smaller than n rows");
        var job = _job ??= new Job();
        job.A = new Args(q, o, heads, d, windows, window, positions, compressed, indices, counts, stride, sinks, scale);
        job.HeadsPerItem = Attention.HeadsPerItem(heads, 1, WorkerPool.Shared.ThreadCount);
        try { WorkerPool.Shared.Run(job, n * (heads / job.HeadsPerItem), grain: 1); }
        finally { job.A = default; }
    }

    /// <summary>One call's arguments, as <see cref="Attend"/> takes them.</summary>
    private readonly record struct Args(float[] Q, float[] O, int Heads, int D, KvCache[] Windows, int Window, int[] Positions,
        KvCache?[] Compressed, int[] Indices, int[] Counts, int Stride, float[] Sinks, float Scale);

    [ThreadStatic] private static Job? _job;

    /// <summary>One (row, group of heads) per item: the row's keys are gathered once per item, then every head of the group uses them.</summary>
    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static float[]? _keys, _scores;
        public Args A;
        public int HeadsPerItem;

        public void Run(int first, int end)
        {
            for (int item = first; item < end; item++)
            {
                var (t, group) = Math.DivRem(item, A.Heads / HeadsPerItem);
                Heads(t, group * HeadsPerItem, HeadsPerItem);
            }
        }

        /// <summary>Heads h0 .. h0 + G of row t.</summary>
        private void Heads(int t, int h0, int G)
        {
            var (Q, O, heads, D, windows, window, positions, compressed, indices, counts, stride, sinks, scale) = A;
            int pos = positions[t], w0 = Math.Max(0, pos - window + 1), nw = pos - w0 + 1, nc = counts[t], count = nw + nc;
            var keys = (_keys is { } k && k.Length >= count * D ? k : (_keys = new float[Math.Max(count * D, 2 * (_keys?.Length ?? 0))])).AsSpan(0, count * D);
            var scores = (_scores is { } s && s.Length >= count ? s : (_scores = new float[Math.Max(count, 256) * 2])).AsSpan(0, count);
            // keys [count, d]: the window (oldest first), then the selected compressed entries
            var ring = windows[t];
            for (int j = 0; j < nw; j++) ring.Read((w0 + j) % ring.Capacity, keys.Slice(j * D, D));
            var selected = indices.AsSpan(t * stride, nc);
            for (int j = 0; j < nc; j++) compressed[t]!.Read(selected[j], keys.Slice((nw + j) * D, D));

            for (int h = h0; h < h0 + G; h++)
            {
                var q = Q.AsSpan((t * heads + h) * D, D);
                var o = O.AsSpan((t * heads + h) * D, D);
                for (int j = 0; j < count; j++) scores[j] = TensorPrimitives.Dot(q, keys.Slice(j * D, D)) * scale;
                float m = TensorPrimitives.Max(scores), sum = MathF.Exp(sinks[h] - m);
                for (int j = 0; j < count; j++) sum += scores[j] = MathF.Exp(scores[j] - m);
                o.Clear();
                for (int j = 0; j < count; j++) TensorPrimitives.MultiplyAdd(keys.Slice(j * D, D), scores[j], o, o);
                TensorPrimitives.Multiply(o, 1f / sum, o);
            }
        }
    }
}
