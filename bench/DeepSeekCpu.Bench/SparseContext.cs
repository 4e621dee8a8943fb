using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `context [--lengths 1024,4096,16384,32768] [--threads 2] [--cache f16] [--reps 5]`: the attention part of one
/// decoding step of one layer at DeepSeek-V3/R1's shapes against context length, dense (V3: absorbed MLA, 128 heads
/// over every latent row [c_kv 512 ; k_pe 64]) beside sparse (V3.2: the lightning indexer's 64 heads x 128 over every
/// index key, its top 2048, then the 128 heads over those latent rows only). Caches are filled with random rows (no
/// prefill), several layers' worth rotated so they are read from memory as in a 61-layer model; the weight products of
/// a step (the same for both but for V3.2's small indexer projections) are not included. Prints ms per layer and
/// x 61 layers.
/// </summary>
internal static class SparseContext
{
    public static int Run(string[] args)
    {
        int[] lengths = [1024, 4096, 16384, 32768];
        int threads = 2, reps = 5;
        var type = KvCacheType.F16;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--lengths": lengths = args[++i].Split(',').Select(int.Parse).ToArray(); break;
                case "--threads": threads = int.Parse(args[++i]); break;
                case "--reps": reps = int.Parse(args[++i]); break;
                case "--cache": type = KvCache.Parse(args[++i]) ?? throw new ArgumentException($"--cache {args[i]}: f32, f16, bf16 or q8_0"); break;
                default: Console.Error.WriteLine($"context: unknown argument '{args[i]}'"); return 2;
            }
        }
        WorkerPool.Configure(threads);
        const int heads = 128, kvl = 512, rope = 64, row = kvl + rope, indexHeads = 64, indexDim = 128, topk = 2048, layers = 61;
        float scale = 1f / MathF.Sqrt(192);
        var rng = new Random(1);
        float[] Random(int count) { var a = new float[count]; for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1); return a; }
        var q = Random(heads * row);
        var o = new float[heads * kvl];
        var qi = Random(indexHeads * indexDim);
        var w = Random(indexHeads);
        var indices = new int[topk];
        var counts = new int[1];
        // warm-up: every kernel called often enough on a short context for the JIT's tier 1 (and once past topk)
        {
            var l = new KvCache(type, row, 2200); var x = new KvCache(type, indexDim, 2200);
            var r = Random(row); var k = Random(indexDim);
            for (int j = 0; j < 2200; j++) { l.Write(j, r); x.Write(j, k); }
            for (int i = 0; i < 60; i++)
            {
                int[] p = [i % 2 == 0 ? 63 : 2199];
                Attention.Causal(q, o, 1, heads, 1, row, kvl, [l], [l], p, scale);
                LightningIndex.Select(qi, w, 1, indexHeads, indexDim, [x], p, topk, indices, counts);
                SparseAttention.Selected(q, o, 1, heads, row, kvl, [l], indices, counts, topk, scale);
            }
            Thread.Sleep(500);
        }
        Console.WriteLine($"attention of one decoding step, one layer, V3/R1 shapes, {type} cache, {threads} threads, median of {reps}");
        Console.WriteLine("| context | V3 dense (ms/layer) | V3.2 index + top-k (ms) | V3.2 sparse attention (ms) | V3.2 total (ms/layer) | x 61 layers: V3 / V3.2 (ms/token) | V3 ÷ V3.2 |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int len in lengths)
        {
            // enough layers' caches to leave the last-level cache between uses (at least 256 MB in all, at most 8)
            long bytes = (long)len * (KvCache.RowBytesOf(type, row) + KvCache.RowBytesOf(type, indexDim));
            int copies = (int)Math.Clamp((256L << 20) / Math.Max(bytes, 1), 1, 8);
            var latent = new KvCache[copies]; var index = new KvCache[copies];
            for (int c = 0; c < copies; c++)
            {
                latent[c] = new KvCache(type, row, len); index[c] = new KvCache(type, indexDim, len);
                var r = Random(row); var k = Random(indexDim);
                for (int j = 0; j < len; j++)
                {
                    r[j % row] = (float)rng.NextDouble(); k[j % indexDim] = (float)rng.NextDouble();   // rows differ
                    latent[c].Write(j, r); index[c].Write(j, k);
                }
            }
            int[] pos = [len - 1];
            var dense = new List<double>(); var select = new List<double>(); var sparse = new List<double>();
            for (int rep = 0; rep <= reps; rep++)                  // rep 0 warms up
            {
                var c = rep % copies;
                var sw = Stopwatch.StartNew();
                Attention.Causal(q, o, 1, heads, 1, row, kvl, [latent[c]], [latent[c]], pos, scale);
                double d = sw.Elapsed.TotalMilliseconds;
                c = (rep + 1) % copies;
                sw.Restart();
                LightningIndex.Select(qi, w, 1, indexHeads, indexDim, [index[c]], pos, topk, indices, counts);
                double s = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                SparseAttention.Selected(q, o, 1, heads, row, kvl, [latent[c]], indices, counts, topk, scale);
                double a = sw.Elapsed.TotalMilliseconds;
                if (rep == 0) continue;
                dense.Add(d); select.Add(s); sparse.Add(a);
            }
            double md = Median(dense), ms = Median(select), ma = Median(sparse);
            Console.WriteLine($"| {len:N0} | {md:F2} | {ms:F2} | {ma:F2} | {ms + ma:F2} | {md * layers:F0} / {(ms + ma) * layers:F0} | {md / (ms + ma):F2} |");
        }
        return 0;
    }

    private static double Median(List<double> a) { a.Sort(); return a[a.Count / 2]; }
}
