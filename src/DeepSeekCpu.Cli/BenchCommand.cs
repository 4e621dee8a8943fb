using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Platform;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// llama-bench-like measurement: prompt processing (pp, one batch of P tokens) and generation (tg, N tokens one at a
    /// time from an empty cache) over repeated runs after uncounted warm-up runs of the same tests (as llama-bench does:
    /// a cold first run pays for JIT tiering and page faults), mean ± standard deviation with min/median/max, and the
    /// decode roofline: the bytes of
    /// weights each token reads against this machine's measured read bandwidth. With --batch B, generation runs B
    /// sequences together through ILanguageModel.DecodeBatch (continuous batching, as the server does) and reports the
    /// aggregate tokens/s (llama.cpp's batched-bench measures the same). With --depth D (llama-bench's -d), each test
    /// runs after D tokens of context: the context is filled once, untimed, and cut back to D before every repetition.
    /// With --llama-bench/--ik-bench/--batched-bench PATH, the peers' benches run alternately with ours
    /// (<see cref="BenchCompare"/>).
    /// </summary>
    private static Command BenchCommand() => Cmd("bench", "speed and roofline (llama-bench), or beside the peers, alternating", Bench, [
        ModelOption("the model (required)"),
        Opt.Int("--prompt-tokens", 512, "tokens of the prompt-processing test (pp)", 0, 1 << 20, ["-p"]),
        Opt.Int("--gen-tokens", 128, "tokens of the generation test (tg)", 0, 1 << 20, ["-n"]),
        Opt.Int("--repetitions", 3, "timed repetitions (2 per run when comparing)", 1, 1000, ["-r"]),
        Opt.Int("--warmup", 1, "uncounted warm-up repetitions", 0, 100),
        Opt.Text("--batch", null, "sequences decoded together (default 1); a list 1,2,4,8 with --batched-bench", "B", ["-b"]),
        Opt.Text("--depth", null, "tokens of context before each test (default 0); a list 0,4096 when comparing", "D", ["-d"]),
        Opt.Text("--verify", null, "the cost of verifying 1..K+1 tokens for speculative decoding (K: 1..31, default 7 when given)", "K"),
        Opt.Float("--draft-cost", 0.25f, "with --verify: a guess's cost relative to a target token", 0, 10),
        Opt.Flag("--json", "one JSON object on stdout"),
        .. ConstraintOptions(),
        TokenizerOption(),
        Opt.Flag("--no-bandwidth", "skip the memory-bandwidth measurement"),
        .. BenchCompare.Options(),
        .. LoadOptionList(),
    ]);

    private static int Bench(CliArgs a)
    {
        if (BenchCompare.Requested(a)) return BenchCompare.Run(a);
        string path = ModelPath(a.Req("--model"));
        int pp = a.Int("--prompt-tokens"), tg = a.Int("--gen-tokens"), reps = a.Int("--repetitions");
        int batch = a.ParseInt("--batch", 1, 1, 256);
        int warmup = a.Int("--warmup");
        int depth = a.ParseInt("--depth", 0, 0, 1 << 20);
        if (a.Given("--json-schema") || a.Given("--grammar")) return BenchGrammar(a, path, tg, reps);
        if (depth > 0 && batch > 1) throw new UsageException("bench: --depth measures one sequence; it cannot be combined with --batch");
        var load = Stopwatch.StartNew();
        using var model = ModelLoader.Load(path, a.LoadOptions(QuantTransform(a.Str("--quant"))));
        double loadMs = load.Elapsed.TotalMilliseconds;
        if (a.Str("--verify") != null) return BenchVerify(a, model, pp, reps, warmup);
        var c = model.Config;
        var rng = new Random(1234);
        int[] RandomTokens(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var logits = new float[c.VocabSize];
        int ctx = depth + Math.Max(pp, tg) + 8;

        // A short first pass JIT-compiles every path and touches the weights once; then `warmup` uncounted repetitions.
        using (var s = model.NewSession(ctx)) { s.Forward(RandomTokens(Math.Min(Math.Max(pp, 1), 32)), logits); for (int i = 0; i < 4; i++) s.Forward(RandomTokens(1), logits); }

        // --depth: one session holds the context, filled once (untimed, in 512-token batches) and cut back before each test.
        using var deep = depth > 0 ? model.NewSession(ctx) : null;
        double fillSeconds = 0;
        if (deep != null)
        {
            var fill = Stopwatch.StartNew();
            var context = RandomTokens(depth);
            for (int i = 0; i < depth; i += 512) deep.Forward(context.AsSpan(i, Math.Min(512, depth - i)), logits);
            fillSeconds = fill.Elapsed.TotalSeconds;
        }
        IModelSession Fresh() { if (deep == null) return model.NewSession(ctx); deep.Truncate(depth); return deep; }

        var ppRates = new List<double>();
        var tgRates = new List<double>();
        for (int r = -warmup; r < reps; r++)
        {
            if (r == 0) { ppRates.Clear(); tgRates.Clear(); }   // the warm-up repetitions' rates are dropped
            if (pp > 0)
            {
                var s = Fresh();
                var toks = RandomTokens(pp);
                var sw = Stopwatch.StartNew();
                s.Forward(toks, logits);
                ppRates.Add(pp / sw.Elapsed.TotalSeconds);
                if (deep == null) s.Dispose();
            }
            if (tg > 0 && batch == 1)
            {
                var s = Fresh();
                var toks = RandomTokens(tg);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < tg; i++) s.Forward(toks.AsSpan(i, 1), logits);
                tgRates.Add(tg / sw.Elapsed.TotalSeconds);
                if (deep == null) s.Dispose();
            }
            else if (tg > 0)
            {
                var sessions = Enumerable.Range(0, batch).Select(_ => model.NewSession(ctx)).ToList();
                var toks = RandomTokens(tg * batch);
                var batchLogits = new float[batch * c.VocabSize];
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < tg; i++) model.DecodeBatch(sessions, toks.AsSpan(i * batch, batch), batchLogits);
                tgRates.Add((double)tg * batch / sw.Elapsed.TotalSeconds);
                foreach (var s in sessions) s.Dispose();
            }
        }
        int usedThreads = WorkerPool.Shared.ThreadCount;
        double bandwidth = a.Has("--no-bandwidth") ? double.NaN : MemoryBandwidth.Measure(usedThreads);
        long bytesPerToken = model.WeightBytesPerToken;
        double roofline = bandwidth * 1e9 / bytesPerToken;
        var (tgMean, tgSd) = MeanSd(tgRates);
        var (ppMean, ppSd) = MeanSd(ppRates);
        double fraction = tgMean / roofline;
        var inv = CultureInfo.InvariantCulture;
        if (a.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(new BenchReport(
                path, a.Has("--no-mmap") ? "anonymous" : "mmap", KernelInfo.ActivePath, c.Architecture.ToString(), usedThreads, loadMs,
                model.Weights.TotalBytes, bytesPerToken, warmup, depth, fillSeconds,
                new BenchTest(pp, null, Json(ppMean), Json(ppSd), Json(Quantile(ppRates, 0)), Json(Quantile(ppRates, 0.5)), Json(Quantile(ppRates, 1)), ppRates),
                new BenchTest(tg, batch, Json(tgMean), Json(tgSd), Json(Quantile(tgRates, 0)), Json(Quantile(tgRates, 0.5)), Json(Quantile(tgRates, 1)), tgRates),
                double.IsNaN(bandwidth) ? null : bandwidth, double.IsNaN(roofline) ? null : roofline, Json(fraction)), CliJson.Default.BenchReport));
            return 0;
        }
        string types = string.Join("/", model.Weights.Tensors.Values.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.ByteLength)).Take(2).Select(g => g.Key));
        Console.WriteLine($"model: {path} ({c.Architecture}, {types}, {model.Weights.TotalBytes / (double)(1L << 30):F2} GiB, {(a.Has("--no-mmap") ? "read into memory" : "memory-mapped")}{(model.Weights.HugePageShare is double hp ? $" ({hp:P0} on 2 MiB pages)" : "")}, load {loadMs:F0} ms), {(model is Models.DeepSeek.DeepSeekModel or Models.Llama.LlamaModel ? $"threads: {usedThreads}, kernels: {KernelInfo.ActivePath}" : $"backend: {model}")}");
        Console.WriteLine($"{reps} repetitions after {warmup} uncounted warm-up repetition(s)");
        string at = depth > 0 ? $" @ d{depth}" : "";
        if (depth > 0) Console.WriteLine(string.Format(inv, "context of {0} tokens filled once in {1:F1} s ({2:F1} tok/s), cut back to it before each test", depth, fillSeconds, depth / fillSeconds));
        Console.WriteLine("| test   |              t/s |    min / median / max    |");
        Console.WriteLine("| ------ | ---------------: | -----------------------: |");
        string Spread(List<double> xs) => string.Format(inv, "{0,7:F2} / {1,6:F2} / {2,6:F2}", Quantile(xs, 0), Quantile(xs, 0.5), Quantile(xs, 1));
        if (pp > 0) Console.WriteLine(string.Format(inv, "| {0,-6} | {1,8:F2} ± {2,5:F2} | {3} |", $"pp{pp}{at}", ppMean, ppSd, Spread(ppRates)));
        if (tg > 0 && batch == 1) Console.WriteLine(string.Format(inv, "| {0,-6} | {1,8:F2} ± {2,5:F2} | {3} |", $"tg{tg}{at}", tgMean, tgSd, Spread(tgRates)));
        if (tg > 0 && batch > 1) Console.WriteLine(string.Format(inv, "| tg{0} x{1} | {2,8:F2} ± {3,5:F2} | {4} |   (aggregate of {1} sequences decoded together)", tg, batch, tgMean, tgSd, Spread(tgRates)));
        if (double.IsNaN(bandwidth)) Console.WriteLine(string.Format(inv, "roofline: {0:F1} MB of weights read per generated token (bandwidth not measured)", bytesPerToken / 1e6));
        else Console.WriteLine(string.Format(inv, "roofline: {0:F1} MB of weights read per generated token{5}; measured read bandwidth {1:F1} GB/s ({2} threads) → at most {3:F1} tok/s; generation reaches {4:P0} of it",
            bytesPerToken / 1e6, bandwidth, usedThreads, roofline, fraction, depth > 0 ? " (the KV cache read at depth is not counted)" : ""));
        return 0;
    }

    /// <summary>A statistic for --json: null where there is none (a test of 0 tokens has no samples; JSON has no NaN).</summary>
    private static double? Json(double x) => double.IsFinite(x) ? x : null;

    /// <summary>The q-quantile (0 = min, 0.5 = median, 1 = max) with linear interpolation; NaN for no samples.</summary>
    private static double Quantile(List<double> xs, double q)
    {
        if (xs.Count == 0) return double.NaN;
        var sorted = xs.Order().ToArray();
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    private static (double mean, double sd) MeanSd(List<double> xs)
    {
        if (xs.Count == 0) return (double.NaN, double.NaN);
        double m = xs.Average();
        double sd = xs.Count > 1 ? Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / (xs.Count - 1)) : 0;
        return (m, sd);
    }
}

internal static partial class Commands
{
    /// <summary>--quant TYPE: quantize float weights (F32/F16/BF16/FP8) at load; already-quantized matrices stay as they are.</summary>
    /// <param name="kept">Collects the float matrices left as they are because their rows do not fit TYPE's blocks.</param>
    internal static Func<DeepSeekCpu.Weights.WeightMatrix, DeepSeekCpu.Weights.WeightMatrix>? QuantTransform(string? quant,
        System.Collections.Concurrent.ConcurrentBag<(int Cols, DeepSeekCpu.Weights.DType Type)>? kept = null)
    {
        if (quant == null) return null;
        var type = QuantType(quant);
        return m =>
        {
            if (m.Type is not (DeepSeekCpu.Weights.DType.F32 or DeepSeekCpu.Weights.DType.F16 or DeepSeekCpu.Weights.DType.BF16 or DeepSeekCpu.Weights.DType.F8_E4M3) || m.Type == type) return m;
            if (m.Cols % type.BlockSize() == 0) return Quantize.Matrix(m, type);
            kept?.Add((m.Cols, m.Type));
            return m;
        };
    }

    private static DeepSeekCpu.Weights.DType QuantType(string quant) =>
        quant.ToLowerInvariant() switch
        {
            "q8_0" => DeepSeekCpu.Weights.DType.Q8_0,
            "q4_0" => DeepSeekCpu.Weights.DType.Q4_0,
            "q4_k" => DeepSeekCpu.Weights.DType.Q4_K,
            "q6_k" => DeepSeekCpu.Weights.DType.Q6_K,
            "q5_k" => DeepSeekCpu.Weights.DType.Q5_K,
            "f16" => DeepSeekCpu.Weights.DType.F16,
            "bf16" => DeepSeekCpu.Weights.DType.BF16,
            _ => throw new UsageException($"--quant '{quant}' is unknown (expected q8_0, q4_0, q4_k, q5_k, q6_k, f16 or bf16)"),
        };
}
