using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeepSeekCpu.Generation;

namespace DeepSeekCpu.Cli;

/// <summary>
/// Structured output and thinking control on the command line: --json-schema FILE / --grammar FILE (llama.cpp's GBNF)
/// hold run's and chat's answers to a grammar (the reasoning stays free), --reasoning-budget N closes the reasoning
/// after N tokens (run, chat, serve's default), and bench --json-schema/--grammar measures what the constraint costs.
/// </summary>
internal static partial class Commands
{
    private static Option[] ConstraintOptions() =>
    [
        Opt.Text("--json-schema", null, "hold the answer to this JSON schema (constrained sampling)", "FILE"),
        Opt.Text("--grammar", null, "hold the answer to this GBNF grammar (llama.cpp's format)", "FILE"),
    ];

    private static Option ReasoningBudgetOption() =>
        Opt.IntOrNull("--reasoning-budget", "reasoning tokens at most; then \"</think>\" closes the reasoning (default: no limit)", 0);

    /// <summary>The grammar --json-schema or --grammar names (null: neither); a bad file is a one-line error naming it.</summary>
    private static Grammar? GrammarOption(CliArgs a)
    {
        string? schema = a.Str("--json-schema"), gbnf = a.Str("--grammar");
        if (schema != null && gbnf != null) throw new UsageException("give --json-schema or --grammar, not both");
        string? file = schema ?? gbnf;
        if (file == null) return null;
        string text;
        try { text = File.ReadAllText(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"{file}: {e.Message}"); }
        try { return schema != null ? JsonSchemaGrammar.FromSchema(text) : Grammar.Parse(text); }
        catch (Exception e) when (e is ArgumentException or FormatException) { throw new UsageException($"{file}: {e.Message}"); }
    }

    /// <summary>
    /// bench --json-schema FILE (or --grammar FILE), with --tokenizer for a model file without a vocabulary: decodes
    /// --gen-tokens tokens with and without the constraint, alternating the two in each repetition, and reports the
    /// time per token of the model's pass and of the sampling step (where the constraint works) apart, and the
    /// constraint's cost as a fraction of a decode step. A finished answer starts a new one from the same prompt.
    /// </summary>
    private static int BenchGrammar(CliArgs a, string path, int tokens, int reps)
    {
        var grammar = GrammarOption(a)!;
        using var lm = LocalModel.Load(path, a.Str("--tokenizer"), a.LoadOptions(QuantTransform(a.Str("--quant"))));
        int[] prompt = lm.Tokenizer.Encode("Answer in JSON.", addSpecial: true);
        int vocab = lm.Model.Config.VocabSize;
        var logits = new float[vocab];
        (double Forward, double Step) Run(Grammar? g, ulong seed)
        {
            double forward = 0, step = 0;
            int done = 0;
            while (done < tokens)
            {
                using var s = lm.Model.NewSession(prompt.Length + tokens + 8);
                s.Forward(prompt, logits);
                var seq = new Sequence(lm.Tokenizer, prompt, tokens - done, DeepSeekCpu.Generation.SamplingOptions.Greedy with { Temperature = 1, Seed = seed }) { Grammar = g };
                var pieces = new List<GeneratedToken>();
                while (true)
                {
                    var sw = Stopwatch.StartNew();
                    seq.Step(logits, pieces);
                    step += sw.Elapsed.TotalMilliseconds;
                    if (seq.Finished) { done += Math.Max(1, seq.Result.CompletionTokens); break; }
                    done++;
                    sw.Restart();
                    s.Forward([seq.NextToken], logits);
                    forward += sw.Elapsed.TotalMilliseconds;
                }
            }
            return (forward / tokens, step / tokens);
        }
        Run(grammar, 1);   // warm-up: JIT, the vocabulary table
        var free = new List<(double, double)>();
        var held = new List<(double, double)>();
        for (int r = 0; r < reps; r++) { free.Add(Run(null, (ulong)r + 1)); held.Add(Run(grammar, (ulong)r + 1)); }
        var inv = CultureInfo.InvariantCulture;
        double fwd = free.Concat(held).Average(x => x.Item1), stepFree = free.Average(x => x.Item2), stepHeld = held.Average(x => x.Item2);
        Console.WriteLine(string.Format(inv, "model pass {0:F2} ms/token | sampling step {1:F3} ms unconstrained, {2:F3} ms constrained | constraint cost {3:F3} ms/token = {4:P1} of a decode step ({5} tokens x {6} repetitions, vocabulary {7})",
            fwd, stepFree, stepHeld, stepHeld - stepFree, (stepHeld - stepFree) / (fwd + stepFree), tokens, reps, lm.Tokenizer.VocabSize));
        return 0;
    }
}
