using System.CommandLine;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    /// <summary>
    /// Interactive chat on a one-slot <see cref="ChatEngine"/>: each turn's prompt is the rendered conversation, and the
    /// engine processes only what follows the prefix its cache already holds (earlier reasoning is stripped by the
    /// template, so the cache is rewound to where the texts diverge; /reset needs nothing more than a shorter history).
    /// </summary>
    private static Command ChatCommand() => Cmd("chat", "interactive multi-turn chat (/reset, /exit; Ctrl+C stops an answer)", Chat, [
        ModelOption(),
        Opt.Int("--max-tokens", 2048, "tokens to generate at most per answer", min: 1, aliases: ["-n", "--n-predict"]),
        .. SamplingOptions(),
        CtxOption(),
        Opt.Text("--system", null, "a system message", "TEXT"),
        Opt.Text("--think", null, "V3.1-style templates: think first (on), or answer directly (off) (default: the template's)", "on|off"),
        .. ConstraintOptions(),
        ReasoningBudgetOption(),
        Opt.Flag("--hide-reasoning", "print the answers only, not the reasoning"),
        Opt.Flag("--no-stats", "no statistics line after each answer"),
        TokenizerOption(),
        .. LoadOptionList(),
    ]);

    private static int Chat(CliArgs a)
    {
        int maxTokens = a.Int("--max-tokens");
        var sampling = Sampling(a);
        using var lm = LoadModel(a, allowDefault: true);
        int ctx = a.IntOrNull("--ctx") ?? Math.Min(lm.Model.Config.MaxPositionEmbeddings, 4096);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer, slots: 1, ctx);
        var request = new GenerationRequest
        {
            MaxTokens = maxTokens, Sampling = sampling, Grammar = GrammarOption(a), ReasoningBudget = a.IntOrNull("--reasoning-budget"),
        };
        var history = new List<ChatMessage>();
        if (a.Str("--system") is { } sys) history.Add(new ChatMessage("system", sys));
        bool? think = Think(a, lm.Tokenizer);

        CancellationTokenSource? answering = null;
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl+C during an answer stops the answer; at the prompt it ends the program.
            if (answering is { IsCancellationRequested: false } c) { e.Cancel = true; c.Cancel(); }
        };
        Console.Error.WriteLine(lm.Tokenizer.ChatTemplate == null
            ? "(this model has no chat template: each line continues the text)  /reset clears, /exit quits"
            : "chat: type a message; /reset clears the conversation, /exit quits, Ctrl+C stops an answer");
        while (true)
        {
            Console.Error.Write(">>> ");
            string? line = Console.ReadLine();
            if (line == null || line.Trim() == "/exit" || line.Trim() == "/bye") break;
            if (line.Trim() == "/reset") { history.RemoveAll(m => m.Role != "system"); Console.Error.WriteLine("(conversation cleared)"); continue; }
            if (string.IsNullOrWhiteSpace(line)) continue;

            history.Add(new ChatMessage("user", line));
            int[] prompt = engine.RenderChat(history, think, out bool reasoning);
            try { engine.Check(prompt, request); }
            catch (ArgumentException)
            {
                Console.Error.WriteLine($"(the conversation no longer fits the {engine.ContextLength}-token context: /reset)");
                history.RemoveAt(history.Count - 1);
                continue;
            }

            var printer = new StreamPrinter(Console.Out, a.Has("--hide-reasoning"));
            var result = new GenerationResult();
            answering = new CancellationTokenSource();
            try
            {
                foreach (var d in engine.StreamAsync(prompt, reasoning, request, result, answering.Token).ToBlockingEnumerable())
                    printer.Write(d.Text, d.Kind);
            }
            catch (OperationCanceledException) when (answering.IsCancellationRequested) { }
            printer.End();
            if (answering.IsCancellationRequested) Console.Error.WriteLine("(stopped)");
            answering = null;
            history.Add(new ChatMessage("assistant", result.Content.Trim()));
            if (!a.Has("--no-stats")) PrintStats(result);
        }
        return 0;
    }
}
