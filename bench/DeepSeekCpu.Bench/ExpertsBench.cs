using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `experts [--threads N] [--n 256] [--rounds 5] [--format Q4_0] [--interleaved]`: an MoE layer's gate/up half over a prompt chunk, V2-Lite shapes
/// (64 routed experts of 1408 x 2048 and 2 shared, Q4_0, 6 experts per token, random routing): the unfused path
/// (one batch of products, then Ops.SwiGlu) against ExpertGemm's fused one, alternating, timed by the process's CPU
/// time (a shared host's load does not count); prints ms per call.
/// </summary>
internal static class ExpertsBench
{
    public static unsafe int Run(string[] args)
    {
        int Arg(string name, int d) { int i = Array.IndexOf(args, name); return i >= 0 ? int.Parse(args[i + 1]) : d; }
        int threads = Arg("--threads", 1), n = Arg("--n", 256), rounds = Arg("--rounds", 5);
        bool interleaved = args.Contains("--interleaved");   // the decode kernels' copy, as the model loader attaches it
        int fi = Array.IndexOf(args, "--format");
        var type = fi >= 0 ? Enum.Parse<DType>(args[fi + 1]) : DType.Q4_0;   // the experts' weight format
        const int E = 64, K = 6, Inter = 1408, Dim = 2048;
        WorkerPool.Configure(threads);
        var w1 = new WeightMatrix[E + 1]; var w3 = new WeightMatrix[E + 1];
        for (int e = 0; e <= E; e++)
        {
            int r = e == E ? 2 * Inter : Inter;   // the last one: the shared experts
            w1[e] = BenchWeights.Make(type, r, Dim, 2 * e + 1); w3[e] = BenchWeights.Make(type, r, Dim, 2 * e + 2);
            if (interleaved) { Kernels.Repack.Interleave.Attach(w1[e], KernelInfo.Path); Kernels.Repack.Interleave.Attach(w3[e], KernelInfo.Path); }
        }
        var x = GC.AllocateArray<float>(n * Dim, pinned: true);
        BenchWeights.Activations(n * Dim).CopyTo(x, 0);
        var rng = new Random(7);
        var lists = Enumerable.Range(0, E).Select(_ => new List<int>()).ToArray();
        for (int t = 0; t < n; t++)
            foreach (int e in Enumerable.Range(0, E).OrderBy(_ => rng.Next()).Take(K)) lists[e].Add(t);
        var rows = lists.Select(l => GC.AllocateArray<int>(Math.Max(1, l.Count), pinned: true)).ToArray();
        for (int e = 0; e < E; e++) lists[e].CopyTo(rows[e]);
        long hidden = (long)n * K * Inter + (long)n * 2 * Inter;
        var h = GC.AllocateArray<float>((int)hidden, pinned: true);
        var u = GC.AllocateArray<float>((int)hidden, pinned: true);
        var xs = GC.AllocateArray<float>(n * K * Dim, pinned: true);
        var batch = new MatMulBatch(); var eb = new ExpertBatch();

        void Unfused()   // main's MoE.Forward before ExpertGemm: gather, one batch of products, SwiGLU
        {
            batch.Clear(n);
            int i0 = 0;
            for (int e = 0; e < E; e++)
            {
                int m = lists[e].Count;
                for (int i = 0; i < m; i++) x.AsSpan(rows[e][i] * Dim, Dim).CopyTo(xs.AsSpan((i0 + i) * Dim));
                batch.Add(w1[e], xs.AsSpan(i0 * Dim, m * Dim), h.AsSpan(i0 * Inter), m);
                batch.Add(w3[e], xs.AsSpan(i0 * Dim, m * Dim), u.AsSpan(i0 * Inter), m);
                i0 += m;
            }
            batch.Add(w1[E], x, h.AsSpan(i0 * Inter), n);
            batch.Add(w3[E], x, u.AsSpan(i0 * Inter), n);
            MatMul.Multiply(batch);
            Ops.SwiGlu(h, u);
        }
        void Fused()
        {
            eb.Clear();
            int i0 = 0;
            for (int e = 0; e < E; e++)
            {
                int m = lists[e].Count;
                eb.Add(w1[e], w3[e], x, rows[e].AsSpan(0, m), m, h.AsSpan(i0 * Inter), u.AsSpan(i0 * Inter));
                i0 += m;
            }
            eb.Add(w1[E], w3[E], x, [], n, h.AsSpan(i0 * Inter), u.AsSpan(i0 * Inter));
            ExpertGemm.Run(eb);
        }
        Unfused(); Fused();
        Console.WriteLine($"experts ({type}{(interleaved ? ", interleaved" : "")}): n={n}, threads={threads}, kernels {KernelInfo.ActivePath}; CPU ms per call, unfused | fused");
        for (int r = 0; r < rounds; r++)
        {
            double a = Cpu(Unfused), b = Cpu(Fused);
            Console.WriteLine($"round {r}: {a:F1} | {b:F1}  ({a / b:F2}x)");
        }
        return 0;
    }

    private static double Cpu(Action a)
    {
        var p = Process.GetCurrentProcess();
        var t0 = p.TotalProcessorTime;
        for (int i = 0; i < 3; i++) a();
        p.Refresh();
        return (p.TotalProcessorTime - t0).TotalMilliseconds / 3;
    }
}
