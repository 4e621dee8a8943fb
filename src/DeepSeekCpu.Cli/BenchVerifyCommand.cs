using System.Diagnostics;
using System.Globalization;
using DeepSeekCpu.Models;
using DeepSeekCpu.Threading;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// bench --verify K: what speculative decoding's verification costs on this machine. After a prompt of P tokens
    /// (-p, at most 64), one target pass over n = 1..K+1 tokens with every row's logits,
    /// rolled back after each, the sizes in a rotated order per repetition so that a busy host's drift falls on all of
    /// them alike; each repetition's times are divided by that repetition's one-token time, and the median ratio is
    /// reported. From the ratios c(n), the expected speed-up of speculation with k guesses kept each with probability
    /// a (independently): E = (1 - a^(k+1)) / (1 - a) tokens per round, for c(k+1) + k·r one-token passes, r the cost
    /// of a guess (--draft-cost, relative to a target token: 0 for free guesses, about the byte ratio for a draft model).
    /// Acceptance itself depends on real weights and text: it is an input here, never measured.
    /// A DeepSeek model with an MTP layer also times one MTP step (the layer and its head over one row, what run --mtp
    /// adds per guess) in the same rotation, and its ratio to a one-token pass is the r of the MTP rows.
    /// </summary>
    private static int BenchVerify(CliArgs a, ILanguageModel model, int pp, int reps, int warmup)
    {
        int kMax = a.ParseInt("--verify", 7, 1, 31);
        double draftCost = a.Float("--draft-cost");
        int prefix = Math.Min(pp, 64);
        int vocab = model.Config.VocabSize;
        var rng = new Random(1234);
        var logits = new float[(kMax + 1) * vocab];
        var mtp = (model as DeepSeekCpu.Models.DeepSeek.DeepSeekModel)?.Mtp;   // loaded before the prompt: it keeps its rows
        using var s = model.NewSession(prefix + kMax + 8);
        var prompt = Enumerable.Range(0, Math.Max(prefix, 1)).Select(_ => rng.Next(vocab)).ToArray();
        s.Forward(prompt, logits);
        int start = s.Position;
        var mtpRatios = new List<double>();
        var mtpMs = new List<double>();
        var guess = new int[1];
        var ratios = Enumerable.Range(0, kMax + 2).Select(_ => new List<double>()).ToArray();   // [n] for n = 1..kMax+1
        var ms = Enumerable.Range(0, kMax + 2).Select(_ => new List<double>()).ToArray();
        var t = new double[kMax + 2];
        for (int r = -warmup; r < reps; r++)
        {
            for (int i = 0; i <= kMax; i++)
            {
                int n = 1 + (i + Math.Max(r, 0)) % (kMax + 1);   // rotated order
                var toks = Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
                var sw = Stopwatch.StartNew();
                s.Forward(toks, logits, allPositions: true);
                t[n] = sw.Elapsed.TotalMilliseconds;
                s.Truncate(start);
            }
            double tMtp = 0;
            if (mtp != null)
            {
                var sw = Stopwatch.StartNew();
                mtp.Draft(s, prompt, rng.Next(vocab), guess);   // one row: the module has read the prompt's rows
                tMtp = sw.Elapsed.TotalMilliseconds;
            }
            if (r < 0) continue;
            for (int n = 1; n <= kMax + 1; n++) { ratios[n].Add(t[n] / t[1]); ms[n].Add(t[n]); }
            if (mtp != null) { mtpRatios.Add(tMtp / t[1]); mtpMs.Add(tMtp); }
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"model: {a.Str("--model")} ({model.Config.Architecture}), threads: {WorkerPool.Shared.ThreadCount}, context position {start}, {reps} repetitions after {warmup} warm-up");
        Console.WriteLine("| tokens verified | median ms | cost ÷ 1 token (median, min..max) |");
        Console.WriteLine("| --------------: | --------: | ---------------------------------: |");
        var c = new double[kMax + 2];
        for (int n = 1; n <= kMax + 1; n++)
        {
            c[n] = Quantile(ratios[n], 0.5);
            Console.WriteLine(string.Format(inv, "| {0,15} | {1,9:F1} | {2,6:F2} ({3:F2}..{4:F2}) |", n, Quantile(ms[n], 0.5), c[n], Quantile(ratios[n], 0), Quantile(ratios[n], 1)));
        }
        double mtpCost = mtp != null ? Quantile(mtpRatios, 0.5) : double.NaN;
        if (mtp != null)
            Console.WriteLine(string.Format(inv, "| MTP step (layer {0} + head, 1 row) | {1,9:F1} | {2,6:F2} ({3:F2}..{4:F2}) |",
                mtp.Layer, Quantile(mtpMs, 0.5), mtpCost, Quantile(mtpRatios, 0), Quantile(mtpRatios, 1)));
        if (mtp != null)
            Console.WriteLine(string.Format(inv, "(the MTP step reads {0:F1} MB of weights, the main model's step {1:F1} MB: {2:F3} of it)",
                ((DeepSeekCpu.Models.DeepSeek.DeepSeekModel)model).MtpBytesPerToken / 1e6, model.WeightBytesPerToken / 1e6,
                ((DeepSeekCpu.Models.DeepSeek.DeepSeekModel)model).MtpBytesPerToken / (double)model.WeightBytesPerToken));
        Console.WriteLine();
        Console.WriteLine(string.Format(inv, "expected speed-up over plain decoding, k guesses each kept with probability a, a guess costing r = {0:F2} target tokens{1}",
            draftCost, mtp != null ? string.Format(inv, " (and r = {0:F2}: the MTP step measured above)", mtpCost) : ""));
        double[] rates = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9];
        Console.WriteLine("| k | r    | " + string.Join(" | ", rates.Select(x => string.Format(inv, "a={0:F2}", x))) + " |");
        Console.WriteLine("| - | ---- | " + string.Join(" | ", rates.Select(_ => "-----:")) + " |");
        foreach (double r in mtp != null ? new[] { 0.0, draftCost, mtpCost } : [0.0, draftCost])
            for (int k = 1; k <= kMax; k++)
                Console.WriteLine(string.Format(inv, "| {0} | {1:F2} | ", k, r) + string.Join(" | ", rates.Select(x =>
                    string.Format(inv, "{0,6:F2}", (1 - Math.Pow(x, k + 1)) / (1 - x) / (c[k + 1] + k * r)))) + " |");
        Console.WriteLine("(acceptance is not measured: it needs real weights and text; DeepSeek-V3 reports 85-90% for its MTP token)");
        if (mtp != null)
            Console.WriteLine(string.Format(inv, "run --mtp (k = 1) at DeepSeek-V3's published acceptance: a = 0.85 -> {0:F2}x, a = 0.90 -> {1:F2}x plain decoding",
                1.85 / (c[2] + mtpCost), 1.90 / (c[2] + mtpCost)));
        return 0;
    }
}
