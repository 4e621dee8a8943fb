using System.Numerics.Tensors;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// DeepSeek-V3.2's lightning indexer, scoring and selection (DeepSeek-V3.2-Exp inference/model.py Indexer.forward;
/// kernel.fp8_index computed in float32): for each row t, a query of one token at position positions[t], the index
/// score of cached position j ≤ positions[t] is
///   score[t, j] = Σ_h w[t, h] · ReLU(q[t, h] · k_j)
/// with q [n, heads, headDim], the per-head weights w [n, heads] and k_j row j of the row's index-key cache; the row
/// then keeps the min(topk, positions[t] + 1) positions of highest score (torch.topk; all of them when the context is
/// no longer than topk, as the reference's topk over min(index_topk, end_pos) does). Rows are scored tile by tile on
/// the worker pool.
/// </summary>
internal static class LightningIndex
{
    /// <summary>
    /// Fills indices[t * topk ..][..counts[t]] with row t's selected positions, ascending, for each of the n rows.
    /// </summary>
    public static void Select(float[] q, float[] w, int n, int heads, int headDim, KvCache[] keys, int[] positions,
        int topk, int[] indices, int[] counts)
    {
        if (n <= 0) return;
        if (topk < 1) throw new ArgumentOutOfRangeException(nameof(topk), $"top-k {topk}: at least one position is kept");
        if (q.Length < (long)n * heads * headDim || w.Length < (long)n * heads || keys.Length < n || positions.Length < n
            || indices.Length < (long)n * topk || counts.Length < n)
            throw new ArgumentException("lightning index buffers are smaller than n rows");
        int longest = 0;
        for (int t = 0; t < n; t++) longest = Math.Max(longest, positions[t] + 1);
        // Rows are scored in groups whose score matrix [group, longest] stays under MaxScores floats: a 256-row prompt
        // chunk at 128K of context would otherwise hold 128 MB of scores. Rows are independent, so grouping changes
        // nothing in the result.
        int group = (int)Math.Clamp(MaxScores / longest, 1, n);
        var job = _job ??= new SelectJob();
        if (job.Scores.Length < (long)group * longest) job.Scores = new float[Math.Max((long)group * longest, 2L * job.Scores.Length)];
        job.Q = q; job.W = w; job.Heads = heads; job.HeadDim = headDim; job.Keys = keys; job.Positions = positions;
        job.Topk = topk; job.Indices = indices; job.Counts = counts; job.Stride = longest;
        job.Tiles = (longest + KvCache.Tile - 1) / KvCache.Tile;
        try
        {
            for (job.Row0 = 0; job.Row0 < n; job.Row0 += group)
            {
                int rows = Math.Min(group, n - job.Row0);
                job.Scoring = true;                              // scores of every (row, tile of keys)
                WorkerPool.Shared.Run(job, rows * job.Tiles, grain: 1);
                job.Scoring = false;                             // then each row's top-k
                WorkerPool.Shared.Run(job, rows, grain: 1);
            }
        }
        finally { job.Q = job.W = null!; job.Keys = null!; job.Positions = job.Indices = job.Counts = null!; }
    }

    /// <summary>Largest score matrix kept at once, in floats (16 MB).</summary>
    internal const long MaxScores = 4L << 20;

    [ThreadStatic] private static SelectJob? _job;

    private sealed unsafe class SelectJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _tile, _copy, _heads;
        public float[] Scores = [];                              // [group, Stride] score[Row0 + i, j]
        public float[] Q = null!, W = null!;
        public KvCache[] Keys = null!;
        public int[] Positions = null!, Indices = null!, Counts = null!;
        public int Heads, HeadDim, Topk, Stride, Tiles, Row0;
        public bool Scoring;

        public void Run(int first, int end)
        {
            for (int item = first; item < end; item++)
                if (Scoring) Score(Row0 + item / Tiles, item % Tiles * KvCache.Tile);
                else Keep(Row0 + item);
        }

        /// <summary>score[t, j0 .. j0 + Tile) for the keys of row t that exist (none when the row keeps all its keys):
        /// every head's q_h · k_j for the tile at once (<see cref="AttentionTile.Scores"/>), then Σ_h w_h · ReLU(·)
        /// added head by head in order of h.</summary>
        private void Score(int t, int j0)
        {
            int len = Positions[t] + 1, T = KvCache.Tile;
            if (len <= Topk || j0 >= len) return;
            int m = Math.Min(T, len - j0);
            var keys = Keys[t];
            var tile = (_tile is { } b && b.Length >= T * HeadDim ? b : (_tile = new float[T * HeadDim])).AsSpan();
            var perHead = (_heads is { } h && h.Length >= Heads * T ? h : (_heads = new float[Heads * T])).AsSpan();
            var k = keys.Rows(j0, m, tile, 0, HeadDim, out int stride);            // [m, headDim] at row stride
            var w = W.AsSpan(t * Heads, Heads);                      // [heads]
            var scores = Scores.AsSpan((t - Row0) * Stride + j0, m);
            fixed (float* q = &Q[t * Heads * HeadDim], kp = k, ph = perHead)
                AttentionTile.Scores(q, Heads, HeadDim, kp, m, stride, 1f, ph, T);   // [heads, T] q_h · k_j
            scores.Clear();
            for (int hd = 0; hd < Heads; hd++)
            {
                var sh = perHead.Slice(hd * T, m);
                TensorPrimitives.Max(sh, 0f, sh);                    // ReLU
                TensorPrimitives.MultiplyAdd(sh, w[hd], scores, scores);
            }
        }

        /// <summary>Row t's selected positions, ascending: every position when len ≤ topk, else the topk best.</summary>
        private void Keep(int t)
        {
            int len = Positions[t] + 1, k = Math.Min(Topk, len);
            var selected = Indices.AsSpan(t * Topk, k);
            Counts[t] = k;
            if (len <= Topk)
            {
                for (int j = 0; j < len; j++) selected[j] = j;
                return;
            }
            var scores = Scores.AsSpan((t - Row0) * Stride, len);
            var copy = (_copy is { } c && c.Length >= len ? c : (_copy = new float[Math.Max(len, 2 * (_copy?.Length ?? 0))])).AsSpan(0, len);
            for (int j = 0; j < len; j++) copy[j] = float.IsNaN(scores[j]) ? float.NegativeInfinity : scores[j];
            float threshold = KthSmallest(copy, len - k);            // the k-th largest score
            int above = 0;
            for (int j = 0; j < len; j++) if (scores[j] > threshold) above++;
            int ties = k - above, kept = 0;                          // equal scores: the lowest positions first
            for (int j = 0; j < len && kept < k; j++)
            {
                float s = float.IsNaN(scores[j]) ? float.NegativeInfinity : scores[j];
                if (s > threshold || (s == threshold && ties-- > 0)) selected[kept++] = j;
            }
        }
    }

    /// <summary>The value that would sit at index <paramref name="k"/> of <paramref name="a"/> sorted ascending
    /// (Hoare's selection; reorders <paramref name="a"/>, which holds no NaN).</summary>
    internal static float KthSmallest(Span<float> a, int k)
    {
        int lo = 0, hi = a.Length - 1;
        while (lo < hi)
        {
            float pivot = a[(int)((uint)(lo + hi) >> 1)];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) { (a[i], a[j]) = (a[j], a[i]); i++; j--; }
            }
            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return a[k];
        }
        return a[k];
    }
}
