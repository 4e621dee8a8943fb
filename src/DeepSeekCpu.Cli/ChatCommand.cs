using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// Interactive chat on a one-slot <see cref="ChatEngine"/>: each turn's prompt is the rendered conversation, and the
    /// engine processes only what follows the prefix its cache already holds (earlier reasoning is stripped by the
    /// template, so the cache is rewound to where the texts diverge; /reset needs nothing more than a shorter history).
    /// Lines starting with '/' are commands (<see cref="ChatHelp"/>); a message between """ lines spans several lines.
    /// </summary>
    private static Command ChatCommand() => Cmd("chat", "interactive multi-turn chat (/help lists the chat commands; Ctrl+C stops an answer)", Chat, [
        ModelOption(),
        MaxTokensOption(),
        .. SamplingOptions(),
        CtxOption(),
        Opt.Text("--system", null, "a system message", "TEXT"),
        ChatTemplateOption(),
        Opt.Text("--think", null, "V3.1-style templates: think first (on), or answer directly (off) (default: the template's)", "on|off"),
        .. ConstraintOptions(),
        ReasoningBudgetOption(),
        Opt.Flag("--hide-reasoning", "print the answers only, not the reasoning"),
        Opt.Flag("--no-stats", "no statistics line after each answer"),
        TokenizerOption(),
        .. LoadOptionList(),
    ]);

    internal const string ChatHelp = """
        /help                 this list
        /set temp 0.7         sampling: temp, top-p, top-k, min-p, repeat-penalty, seed (a number, or "random")
        /set max-tokens 512   tokens per answer (-1: until the model ends or the context is full)
        /set system TEXT      the system message (/set system with no text removes it)
        /set think on|off     V3.1-style templates: think first, or answer directly
        /show                 the settings and the length of the conversation
        /save FILE            the conversation as JSON ({"messages": [{"role", "content"}, ...]})
        /load FILE            a conversation saved by /save (or any such "messages" list)
        /reset                clear the conversation (the system message stays)
        /exit, /bye           quit (Ctrl+D too)
        """ + "\n" + "\"\"\"  starts a message of several lines, \"\"\" on a line of its own ends it";

    private sealed class ChatState
    {
        public required GenerationRequest Request;
        public bool? Think;
        public readonly List<ChatMessage> History = [];
    }

    private static int Chat(CliArgs a)
    {
        var request = new GenerationRequest { MaxTokens = MaxTokens(a), Sampling = Sampling(a) };
        using var lm = LoadModel(a, allowDefault: true);
        var tokenizer = ChatTokenizer(a, lm);
        int ctx = Context(a, lm.Model.Config);
        using var engine = new ChatEngine(lm.Model, tokenizer, slots: 1, ctx);
        request = request with { Grammar = GrammarOption(a), ReasoningBudget = a.IntOrNull("--reasoning-budget") };
        var state = new ChatState { Request = request, Think = Think(a, tokenizer) };
        if (a.Str("--system") is { } sys) state.History.Add(new ChatMessage("system", sys));

        CancellationTokenSource? answering = null;
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl+C during an answer stops the answer; at the prompt it ends the program.
            if (answering is { IsCancellationRequested: false } c) { e.Cancel = true; c.Cancel(); }
        };
        Console.Error.WriteLine(tokenizer.ChatTemplate == null
            ? "(this model has no chat template: each message continues the text)  /help lists the commands, /exit quits"
            : "chat: type a message; /help lists the commands, /exit quits, Ctrl+C stops an answer");
        while (true)
        {
            Console.Error.Write(">>> ");
            string? line = ReadMessage(Console.In);
            if (line == null) break;
            if (line.TrimStart().StartsWith('/'))
            {
                if (!ChatCommandLine(line.Trim(), state, tokenizer)) break;
                continue;
            }
            if (string.IsNullOrWhiteSpace(line)) continue;

            var history = state.History;
            history.Add(new ChatMessage("user", line));
            int[] prompt = engine.RenderChat(history, state.Think, out bool reasoning);
            try { engine.Check(prompt, state.Request); }
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
                foreach (var d in engine.StreamAsync(prompt, reasoning, state.Request, result, answering.Token).ToBlockingEnumerable())
                    printer.Write(d.Text, d.Kind);
            }
            catch (OperationCanceledException) when (answering.IsCancellationRequested) { }
            printer.End(cut: result.FinishReason == FinishReason.Length);
            if (answering.IsCancellationRequested) Console.Error.WriteLine("(stopped)");
            else Explain(printer, result, state.Request.MaxTokens, engine.ContextLength);
            answering = null;
            history.Add(new ChatMessage("assistant", result.Content.Trim()));
            if (!a.Has("--no-stats")) PrintStats(result);
        }
        return 0;
    }

    /// <summary>One message: a line, or the lines between a line starting with """ and one ending with it; null at the end of input.</summary>
    internal static string? ReadMessage(TextReader input)
    {
        string? line = input.ReadLine();
        if (line == null || !line.TrimStart().StartsWith("\"\"\"", StringComparison.Ordinal)) return line;
        var sb = new StringBuilder();
        string rest = line.TrimStart()[3..];
        while (true)
        {
            if (rest.TrimEnd().EndsWith("\"\"\"", StringComparison.Ordinal))
            {
                sb.Append(rest.TrimEnd()[..^3]);
                return sb.ToString().Trim('\n');
            }
            sb.Append(rest).Append('\n');
            Console.Error.Write("... ");
            rest = input.ReadLine() ?? "\"\"\"";   // the input ended inside the block: what came is the message
        }
    }

    /// <summary>A chat command; false to quit.</summary>
    private static bool ChatCommandLine(string line, ChatState state, ITokenizer tokenizer)
    {
        var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        string command = parts[0], arg = line.Length > command.Length ? line[command.Length..].Trim() : "";
        switch (command)
        {
            case "/exit" or "/bye" or "/quit":
                return false;
            case "/help" or "/?":
                Console.Error.WriteLine(ChatHelp);
                break;
            case "/reset" or "/clear":
                state.History.RemoveAll(m => m.Role != "system");
                Console.Error.WriteLine("(conversation cleared)");
                break;
            case "/show":
                var s = state.Request.Sampling;
                Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "temp {0}, top-p {1}, top-k {2}, min-p {3}, repeat-penalty {4}, seed {5}, max-tokens {6}, think {7}; {8} messages{9}",
                    s.Temperature, s.TopP, s.TopK, s.MinP, s.RepetitionPenalty, s.Seed?.ToString(CultureInfo.InvariantCulture) ?? "random",
                    state.Request.MaxTokens == int.MaxValue ? "-1 (no limit)" : state.Request.MaxTokens,
                    state.Think switch { true => "on", false => "off", null => "template default" }, state.History.Count,
                    state.History.FirstOrDefault(m => m.Role == "system") is { } sys ? $", system: {TerminalText.Safe(sys.Content, 80)}" : ""));
                break;
            case "/set":
                Console.Error.WriteLine(Set(state, parts.Length > 1 ? parts[1] : "", parts.Length > 2 ? parts[2].Trim() : "", tokenizer));
                break;
            case "/save":
                if (arg.Length == 0) { Console.Error.WriteLine("(/save FILE)"); break; }
                try
                {
                    // a JsonNode tree, not an anonymous type: no reflection, so the native binary saves the same file
                    var saved = new JsonObject
                    {
                        ["messages"] = new JsonArray([.. state.History.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]),
                    };
                    File.WriteAllText(arg, saved.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                    Console.Error.WriteLine($"(saved {state.History.Count} messages to {arg})");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"(cannot save: {e.Message})"); }
                break;
            case "/load":
                if (arg.Length == 0) { Console.Error.WriteLine("(/load FILE)"); break; }
                try
                {
                    var loaded = LoadConversation(arg);
                    state.History.Clear();
                    state.History.AddRange(loaded);
                    Console.Error.WriteLine($"(loaded {loaded.Count} messages from {arg})");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidFileException)
                {
                    Console.Error.WriteLine($"(cannot load: {TerminalText.Safe(e.Message)})");
                }
                break;
            default:
                Console.Error.WriteLine($"(unknown command {TerminalText.Safe(command, 40)}{Suggest(command, ["/help", "/set", "/show", "/save", "/load", "/reset", "/exit", "/bye"])}; /help lists them)");
                break;
        }
        return true;
    }

    /// <summary>/set NAME VALUE: the new setting, or what was wrong.</summary>
    private static string Set(ChatState state, string name, string value, ITokenizer tokenizer)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = state.Request.Sampling;
        bool Num(out float x) => float.TryParse(value, NumberStyles.Float, inv, out x) && float.IsFinite(x);
        bool Whole(out int x) => int.TryParse(value, NumberStyles.Integer, inv, out x);
        SamplingOptions? next = name.Replace('_', '-') switch
        {
            "temp" or "temperature" when Num(out float t) => s with { Temperature = t },
            "top-p" when Num(out float p) => s with { TopP = p },
            "top-k" when Whole(out int k) => s with { TopK = k },
            "min-p" when Num(out float m) => s with { MinP = m },
            "repeat-penalty" when Num(out float r) => s with { RepetitionPenalty = r },
            "seed" when value == "random" => s with { Seed = null },
            "seed" when ulong.TryParse(value, NumberStyles.Integer, inv, out ulong seed) => s with { Seed = seed },
            _ => null,
        };
        if (next != null)
        {
            try { next.Validate(); }
            catch (ArgumentException e) { return $"(not set: {e.Message})"; }
            state.Request = state.Request with { Sampling = next };
            return $"(set {name} {value})";
        }
        switch (name)
        {
            case "max-tokens" or "max_tokens" or "n" when Whole(out int n) && (n == -1 || n >= 1):
                state.Request = state.Request with { MaxTokens = n == -1 ? int.MaxValue : n };
                return $"(set max-tokens {n})";
            case "system":
                state.History.RemoveAll(m => m.Role == "system");
                if (value.Length > 0) state.History.Insert(0, new ChatMessage("system", value));
                return value.Length > 0 ? "(system message set)" : "(system message removed)";
            case "think" when value is "on" or "off":
                if (tokenizer.ChatTemplate is not { HasThinkingSwitch: true }) return "(this model's chat template has no thinking switch)";
                state.Think = value == "on";
                return $"(set think {value})";
        }
        return $"(/set {TerminalText.Safe(name, 40)} {TerminalText.Safe(value, 40)}: expected temp, top-p, top-k, min-p, repeat-penalty, seed, max-tokens, system or think with a valid value; /help)";
    }

    /// <summary>A conversation written by /save: {"messages": [{"role": ..., "content": ...}, ...]}.</summary>
    private static List<ChatMessage> LoadConversation(string path)
    {
        if (new FileInfo(path).Length > 64 << 20) throw new InvalidFileException($"{path}: more than 64 MiB");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
                throw new InvalidFileException($"{path}: expected {{\"messages\": [...]}}");
            var messages = new List<ChatMessage>();
            foreach (var m in list.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var r) || r.ValueKind != JsonValueKind.String
                    || !m.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String
                    || r.GetString() is not ("system" or "user" or "assistant" or "tool"))
                    throw new InvalidFileException($"{path}: message {messages.Count + 1} needs a \"role\" (system, user, assistant or tool) and a \"content\" string");
                messages.Add(new ChatMessage(r.GetString()!, c.GetString()!));
            }
            return messages;
        }
        catch (JsonException e) { throw new InvalidFileException($"{path}: not valid JSON ({e.Message.Split('\n')[0]})"); }
    }
}
