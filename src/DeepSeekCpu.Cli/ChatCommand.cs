using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    /// <summary>
    /// Interactive chat. The KV cache is kept across turns: each turn's prompt is the rendered conversation, and only
    /// the part after the longest common prefix with what the cache holds is processed again (earlier reasoning is
    /// stripped by the template, so the cache is rewound to where the texts diverge).
    /// </summary>
    private static int Chat(string[] args)
    {
        var a = new CliArgs("chat", args,
            ["--model", "--max-tokens", "--threads", "--ctx", "--tokenizer", "--system", "--quant", .. SamplingValues],
            ["--hide-reasoning", "--no-stats", "--no-mmap"], Aliases);
        int maxTokens = a.Int("--max-tokens", 2048, 1);
        var sampling = Sampling(a);
        using var lm = LoadModel(a, allowDefault: true);
        var template = lm.Tokenizer.ChatTemplate;
        int ctx = a.Int("--ctx", Math.Min(lm.Model.Config.MaxPositionEmbeddings, 4096), 16);
        using var session = lm.Model.NewSession(ctx);
        var generator = new Generator(lm.Model, lm.Tokenizer);
        var history = new List<ChatMessage>();
        if (a.Str("--system") is { } sys) history.Add(new ChatMessage("system", sys));
        var cached = new List<int>(); // tokens whose keys/values the session holds

        CancellationTokenSource? answering = null;
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl+C during an answer stops the answer; at the prompt it ends the program.
            if (answering is { IsCancellationRequested: false } c) { e.Cancel = true; c.Cancel(); }
        };
        Console.Error.WriteLine(template == null
            ? "(this model has no chat template: each line continues the text)  /reset clears, /exit quits"
            : "chat: type a message; /reset clears the conversation, /exit quits, Ctrl+C stops an answer");
        while (true)
        {
            Console.Error.Write(">>> ");
            string? line = Console.ReadLine();
            if (line == null || line.Trim() == "/exit" || line.Trim() == "/bye") break;
            if (line.Trim() == "/reset") { history.RemoveAll(m => m.Role != "system"); cached.Clear(); session.Truncate(0); Console.Error.WriteLine("(conversation cleared)"); continue; }
            if (string.IsNullOrWhiteSpace(line)) continue;

            history.Add(new ChatMessage("user", line));
            int[] full = template != null
                ? lm.Tokenizer.Encode(template.Render(history, addGenerationPrompt: true))
                : lm.Tokenizer.Encode(string.Join("\n", history.Select(m => m.Content)), addSpecial: true);
            int common = 0;
            while (common < cached.Count && common < full.Length - 1 && cached[common] == full[common]) common++;
            session.Truncate(common);
            cached.RemoveRange(common, cached.Count - common);
            if (full.Length + 1 >= ctx) { Console.Error.WriteLine($"(the conversation no longer fits the {ctx}-token context: /reset)"); history.RemoveAt(history.Count - 1); continue; }

            var printer = new StreamPrinter(Console.Out, a.Has("--hide-reasoning"));
            var answer = new System.Text.StringBuilder();
            var stats = new GenerationStats();
            answering = new CancellationTokenSource();
            var newIds = full[common..];
            cached.AddRange(newIds);
            foreach (var t in generator.Generate(session, newIds, Math.Min(maxTokens, ctx - full.Length - 1), sampling, stats,
                         template?.OpensReasoning ?? false, answering.Token))
            {
                printer.Write(t.Text, t.Kind);
                if (t.Kind == TextKind.Answer) answer.Append(t.Text);
                if (t.Id >= 0 && !lm.Tokenizer.StopIds.Contains(t.Id)) cached.Add(t.Id);
            }
            printer.End();
            // The session holds exactly the tokens fed so far (the last sampled token was never fed).
            if (cached.Count > session.Position) cached.RemoveRange(session.Position, cached.Count - session.Position);
            if (answering.IsCancellationRequested) Console.Error.WriteLine("(stopped)");
            answering = null;
            history.Add(new ChatMessage("assistant", answer.ToString().Trim()));
            if (!a.Has("--no-stats")) PrintStats(stats);
        }
        return 0;
    }
}
