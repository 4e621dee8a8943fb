using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `attention [--keys N] [--rows 64] [--heads 1] [--dk 192] [--dv 128] [--rounds 5]`: one thread, flash attention of a
/// block of query rows (<see cref="AttentionTile.Flash"/>, the prompt path: queries in lanes) over N float32 keys and
/// values with no causal mask, timed by CPU time; GFLOP/s (2·(dk + dv) per query, key and head) beside this core's
/// float FMA rate (independent chains of 512-bit, else 256-bit FMAs). The defaults are MLA's naive prefill on V2-Lite/V3
/// (one head of 64 rows, k [nope 128; rope 64], v 128): the arithmetic of a long MLA prompt.
/// </summary>
internal static unsafe class AttentionBench
{
    public static int Run(string[] args)
    {
        if (args.Contains("--decode")) return Decode(args);
        int keys = Arg(args, "--keys", 4096), rows = Arg(args, "--rows", 64), heads = Arg(args, "--heads", 1);
        int dk = Arg(args, "--dk", 192), dv = Arg(args, "--dv", 128), rounds = Arg(args, "--rounds", 5);
        var rng = new Random(1);
        var k = new float[keys * dk]; var v = new float[keys * dv]; var q = new float[rows * heads * dk]; var o = new float[rows * heads * dv];
        foreach (var a in new[] { k, v, q }) for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        double flops = 2.0 * (dk + dv) * rows * heads * keys;
        double peak = FmaPeak();
        Console.WriteLine($"float FMA chains: {peak / 1e9:F1} GFLOP/s on one core");
        fixed (float* kp = k, vp = v, qp = q, op = o)
        {
            var source = new Dense(kp, vp, keys, dk, dv);
            int reps = Math.Max(1, (int)(2e9 / flops));
            AttentionTile.Flash(ref source, qp, rows, heads, dk, dv, 0.1f, op);   // warm-up (JIT, buffers)
            for (int r = 0; r < rounds; r++)
            {
                var cpu0 = Environment.CpuUsage.TotalTime;
                for (int i = 0; i < reps; i++) AttentionTile.Flash(ref source, qp, rows, heads, dk, dv, 0.1f, op);
                double s = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
                Console.WriteLine($"rows {rows} x heads {heads}, dk {dk}, dv {dv}, keys {keys}: {flops * reps / s / 1e9,6:F1} GFLOP/s ({flops * reps / s / peak:P0} of the FMA rate), {s / reps * 1e3:F2} ms per call");
            }
            Parts(qp, rows * heads, dk, dv, kp, vp, op, peak);
        }
        return 0;
    }

    /// <summary>
    /// `attention --decode [--keys 8192] [--heads 12] [--kv-heads 2] [--dk 128] [--dv 128] [--cache f16] [--threads 1]`:
    /// one decoding row of grouped-query attention (<see cref="Attention.Causal"/>, as a decoding step calls it) over
    /// K and V caches of N positions in the cache type, by wall time (the defaults: the 1.5B distill's layer); the
    /// bytes of cache read per call over the time, and GFLOP/s beside the FMA rate.
    /// </summary>
    private static int Decode(string[] args)
    {
        int keys = Arg(args, "--keys", 8192), heads = Arg(args, "--heads", 12), kvHeads = Arg(args, "--kv-heads", 2);
        int dk = Arg(args, "--dk", 128), dv = Arg(args, "--dv", 128), threads = Arg(args, "--threads", 1), rounds = Arg(args, "--rounds", 5);
        int ci = Array.IndexOf(args, "--cache");
        var type = KvCache.Parse(ci >= 0 && ci + 1 < args.Length ? args[ci + 1] : "f16") ?? throw new ArgumentException("--cache: f32, f16, bf16 or q8_0");
        DeepSeekCpu.Threading.WorkerPool.Configure(threads);
        const int layers = 8;   // caches of 8 layers visited in turn, as a step visits its layers: not all in L3 at once
        var rng = new Random(1);
        var kc = new KvCache[layers][]; var vc = new KvCache[layers][];
        var rowK = new float[kvHeads * dk]; var rowV = new float[kvHeads * dv];
        for (int l = 0; l < layers; l++)
        {
            var k = new KvCache(type, kvHeads * dk, keys, kvHeads); var v = new KvCache(type, kvHeads * dv, keys, kvHeads);   // as LlamaSession stores them
            for (int j = 0; j < keys; j++)
            {
                for (int i = 0; i < rowK.Length; i++) rowK[i] = (float)(rng.NextDouble() * 2 - 1);
                for (int i = 0; i < rowV.Length; i++) rowV[i] = (float)(rng.NextDouble() * 2 - 1);
                k.Write(j, rowK); v.Write(j, rowV);
            }
            kc[l] = [k]; vc[l] = [v];
        }
        var q = new float[heads * dk]; var o = new float[heads * dv];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        int[] pos = [keys - 1];
        double flops = 2.0 * (dk + dv) * heads * keys;
        long bytes = (long)keys * (kc[0][0].RowBytes + vc[0][0].RowBytes);
        double peak = FmaPeak();
        for (int l = 0; l < layers; l++) Attention.Causal(q, o, 1, heads, kvHeads, dk, dv, kc[l], vc[l], pos, 0.1f);   // warm-up
        int reps = Math.Max(layers, (int)(2e9 / flops) / layers * layers);
        Console.WriteLine($"decoding attention: {keys} keys, {heads} heads over {kvHeads} KV heads, dk {dk}, dv {dv}, {KvCache.Name(type)} cache, {threads} threads, {layers} layers' caches in turn");
        for (int r = 0; r < rounds; r++)
        {
            var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < reps; i++) Attention.Causal(q, o, 1, heads, kvHeads, dk, dv, kc[i % layers], vc[i % layers], pos, 0.1f);
            double s = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds / reps;
            Console.WriteLine($"  {s * 1e6,8:F1} us per call, cache read {bytes / s / 1e9,5:F1} GB/s, {flops / s / 1e9,5:F1} GFLOP/s ({flops / s / (peak * threads):P0} of {threads} cores' FMA rate)");
        }
        return 0;
    }

    /// <summary>The three steps of one key tile on their own, repeated over the same tile (L1/L2-resident): ns per tile and GFLOP/s.</summary>
    private static void Parts(float* q, int count, int dk, int dv, float* k, float* v, float* o, double peak)
    {
        int T = KvCache.Tile, cp = (count + AttentionTile.Lanes - 1) / AttentionTile.Lanes * AttentionTile.Lanes;
        static float* Alloc(int n) => (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(n * 4), 64);
        float* qt = Alloc(dk * cp), s = Alloc(T * cp), mx = Alloc(cp), sm = Alloc(cp), wk = Alloc(2 * cp);
        new Span<float>(qt, dk * cp).Clear();
        {
            for (int g = 0; g < count; g++) for (int c = 0; c < dk; c++) qt[c * cp + g] = q[g * dk + c];
            const int reps = 20000;
            Time("scores (ScoresT)", 2.0 * cp * T * dk, reps, peak, () => AttentionTile.ScoresT(qt, cp, dk, k, T, dk, 0.1f, s));
            new Span<float>(mx, cp).Fill(float.NegativeInfinity);
            new Span<float>(sm, cp).Clear();
            // after the first call the maximum stays (the tile then holds exps <= 1): the steady state deep in a
            // context, where a new key seldom raises a query's maximum and no output is rescaled
            Time("softmax (SoftmaxT)", 0, reps, peak, () => AttentionTile.SoftmaxT(s, cp, T, mx, sm, wk, o, count, dv));
            Time("weighted sum (AccumulateT)", 2.0 * count * T * dv, reps, peak, () => AttentionTile.AccumulateT(s, cp, count, v, T, dv, dv, o));
        }
        foreach (var p in new[] { qt, s, mx, sm, wk }) System.Runtime.InteropServices.NativeMemory.AlignedFree(p);
        if (Vector512.IsHardwareAccelerated) Widening(dk);
    }

    /// <summary>A tile of an f16 cache (T rows of dk normal halves) to float32: the decoder as used, and its full path alone.</summary>
    private static void Widening(int dk)
    {
        int count = KvCache.Tile * dk / 16 * 16;
        var rng = new Random(3);
        var halves = new Half[count];
        for (int i = 0; i < count; i++) halves[i] = (Half)(rng.NextDouble() * 4 - 2);
        var dst = new float[count];
        fixed (Half* h = halves)
        fixed (float* d = dst)
        {
            byte* w = (byte*)h; float* o = d;
            Time("f16 tile to float32 (as used)", 0, 20000, 1, () => FloatDot.Widen<FloatDot.F16Decode>(w, o, count));
            Time("f16 tile, full decoding only", 0, 20000, 1, () =>
            {
                for (int i = 0; i < count; i += 16)
                    FloatDot.F16Decode.Full<FloatDot.W512, Vector512<float>>(FloatDot.W512.WidenU16((ushort*)w + i)).Store(o + i);
            });
        }
    }

    private static void Time(string name, double flops, int reps, double peak, Action body)
    {
        for (int i = 0; i < 1000; i++) body();
        double best = double.MaxValue;
        for (int r = 0; r < 3; r++)
        {
            var cpu0 = Environment.CpuUsage.TotalTime;
            for (int i = 0; i < reps; i++) body();
            best = Math.Min(best, (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds / reps);
        }
        Console.WriteLine(flops > 0 ? $"  {name,-28} {best * 1e9,8:F0} ns per tile  {flops / best / 1e9,6:F1} GFLOP/s ({flops / best / peak:P0})"
                                    : $"  {name,-28} {best * 1e9,8:F0} ns per tile");
    }

    private static int Arg(string[] args, string name, int dflt)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : dflt;
    }

    /// <summary>Keys [N, dk] and values [N, dv] in float32, all visible to every row.</summary>
    private readonly struct Dense(float* k, float* v, int n, int dk, int dv) : AttentionTile.ITileSource
    {
        public int Visible(int row) => n;
        public ReadOnlySpan<float> Keys(int j0, int count, out int stride) { stride = dk; return new ReadOnlySpan<float>(k + (long)j0 * dk, count * dk); }
        public ReadOnlySpan<float> Values(int j0, int count, ReadOnlySpan<float> keys, int keyStride, out int stride) { stride = dv; return new ReadOnlySpan<float>(v + (long)j0 * dv, count * dv); }
    }

    private static double FmaPeak()
    {
        const long iters = 20_000_000;
        Chains(1000);
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var cpu0 = Environment.CpuUsage.TotalTime;
            Chains(iters);
            best = Math.Min(best, (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds);
        }
        int lanes = Vector512.IsHardwareAccelerated ? 16 : 8;
        return 2.0 * 12 * lanes * iters / best;
    }

    private static float Chains(long iters) => Vector512.IsHardwareAccelerated
        ? Chains<FloatDot.W512, Vector512<float>>(iters) : Chains<FloatDot.W256, Vector256<float>>(iters);

    /// <summary>12 independent FMA chains (enough to cover the FMA latency on every core here).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains<TW, TV>(long iters) where TW : FloatDot.IWidth<TV> where TV : unmanaged
    {
        TV a = TW.Broadcast(0.999f), b = TW.Broadcast(1e-3f);
        TV c0 = TW.Zero, c1 = TW.Zero, c2 = TW.Zero, c3 = TW.Zero, c4 = TW.Zero, c5 = TW.Zero;
        TV c6 = TW.Zero, c7 = TW.Zero, c8 = TW.Zero, c9 = TW.Zero, c10 = TW.Zero, c11 = TW.Zero;
        for (long i = 0; i < iters; i++)
        {
            c0 = TW.Fma(c0, a, b); c1 = TW.Fma(c1, a, b); c2 = TW.Fma(c2, a, b); c3 = TW.Fma(c3, a, b);
            c4 = TW.Fma(c4, a, b); c5 = TW.Fma(c5, a, b); c6 = TW.Fma(c6, a, b); c7 = TW.Fma(c7, a, b);
            c8 = TW.Fma(c8, a, b); c9 = TW.Fma(c9, a, b); c10 = TW.Fma(c10, a, b); c11 = TW.Fma(c11, a, b);
        }
        var s = TW.Add(TW.Add(TW.Add(c0, c1), TW.Add(c2, c3)), TW.Add(TW.Add(c4, c5), TW.Add(c6, c7)));
        return TW.Sum(TW.Add(s, TW.Add(TW.Add(c8, c9), TW.Add(c10, c11))));
    }
}
