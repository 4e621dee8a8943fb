using System.CommandLine;
using System.CommandLine.Invocation;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Models;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>What MODEL can be, shown by `deepseek-cpu --help`.</summary>
    private const string About = """
        DeepSeek-R1 family on the CPU, pure .NET.

        MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json), a .gguf file, or a llama2.c .bin
        (tokenizer.bin beside it, or --tokenizer), or a Hugging Face repo id, fetched into the Hugging Face cache
        ($HF_HOME/hub; HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE honoured). Without -m, run/chat/serve use the bundled
        demo model (stories260K). `deepseek-cpu COMMAND --help` lists a command's options and their defaults.
        """;

    /// <summary>The command tree: each command's options are declared beside its body (RunCommand(), ServeCommand(), ...).</summary>
    internal static RootCommand Root()
    {
        var root = new RootCommand(About);
        foreach (var c in new[] { RunCommand(), ChatCommand(), LogitsCommand(), TokenizeCommand(), InfoCommand(), BenchCommand(),
                                  QuantizeCommand(), ServeCommand(), PullCommand(), ListCommand(), RemoveCommand(), CompletionCommand() })
            root.Subcommands.Add(c);
        var help = new Command("help", "show the commands, or one command's options") { new Argument<string?>("command") { Arity = ArgumentArity.ZeroOrOne } };
        help.SetAction(p => ShowHelp(p.GetValue<string?>("command") is { } c ? [c] : []));
        root.Subcommands.Add(help);
        return root;
    }

    /// <summary>A command whose body reads its options through <see cref="CliArgs"/>.</summary>
    internal static Command Cmd(string name, string description, Func<CliArgs, int> body, Option[]? options = null)
    {
        var c = new Command(name, description);
        foreach (var o in options ?? []) c.Options.Add(o);
        c.SetAction(p => body(new CliArgs(p)));
        return c;
    }

    // Disabled: "@file" response files (a prompt may start with '@') and "-abc" bundling (a value may look like one).
    private static ParserConfiguration ParserSettings => new() { EnablePosixBundling = false, ResponseFileTokenReplacer = null };

    /// <summary>
    /// The program: runs a command and turns bad input into one line on stderr and a non-zero exit (2 for usage
    /// errors, 1 for unusable files or values), never a stack trace.
    /// </summary>
    public static int Execute(string[] args)
    {
        try
        {
            return Dispatch(args);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {TerminalText.Safe(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is ModelFormatException or FileNotFoundException or DirectoryNotFoundException
                                      or InvalidDataException or InvalidFileException or ArgumentException or IOException or UnauthorizedAccessException
                                      or InvalidOperationException or NotSupportedException or OperationCanceledException
                                      or System.Text.Json.JsonException or KeyNotFoundException or FormatException
                                      or OverflowException or OutOfMemoryException)
        {
            Console.Error.WriteLine($"error: {TerminalText.Safe(e.Message.Split('\n')[0])}");   // the message may quote a file
            return 1;
        }
    }

    /// <summary>Parses and runs; usage errors are thrown as <see cref="UsageException"/>, other errors as they are.</summary>
    public static int Dispatch(string[] args)
    {
        if (args.Length == 0) { ShowHelp([]); return 2; }
        var parse = Root().Parse(args, ParserSettings);
        if (parse.Action is ParseErrorAction) throw new UsageException(ParseError(parse));
        return Invoke(parse);
    }

    private static int Invoke(ParseResult parse) => parse.Invoke(new InvocationConfiguration
    {
        EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null, Output = Console.Out, Error = Console.Error,
    });

    /// <summary>`help [COMMAND]`: the help System.CommandLine writes for --help.</summary>
    private static int ShowHelp(string[] command) => Invoke(Root().Parse([.. command, "--help"], ParserSettings));

    /// <summary>The first parse error as one line: an unknown word with the nearest spelling that exists, or the
    /// library's (or our parser's) message, prefixed by the command.</summary>
    private static string ParseError(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        if (parse.UnmatchedTokens.Count > 0)
        {
            string token = parse.UnmatchedTokens[0];
            if (command is RootCommand)
                return $"unknown command '{token}'{Suggest(token, command.Subcommands.Select(c => c.Name))} (expected {string.Join(", ", command.Subcommands.Select(c => c.Name))})";
            return $"{command.Name}: unknown argument '{token}'{Suggest(token, command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)))} (see 'deepseek-cpu {command.Name} --help')";
        }
        string message = parse.Errors[0].Message.Split('\n')[0].Trim();
        return command is RootCommand ? message : $"{command.Name}: {message}";
    }

    /// <summary>" (did you mean X?)" for the names within a small edit distance of a misspelt word, else "".</summary>
    internal static string Suggest(string word, IEnumerable<string> names)
    {
        var near = names.Distinct().Select(n => (n, d: EditDistance(word, n))).Where(x => x.d <= Math.Max(1, word.TrimStart('-').Length / 3))
                        .OrderBy(x => x.d).Select(x => x.n).Take(3).ToList();
        return near.Count == 0 ? "" : $" (did you mean {string.Join(" or ", near)}?)";
    }

    /// <summary>Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.</summary>
    internal static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }

    // Options several commands declare alike (each command gets its own instances).
    internal static Option<string> ModelOption(string description = "the model: a folder, .gguf, llama2.c .bin or org/repo (default: the bundled demo model)") =>
        Opt.Text("--model", null, description, "MODEL", ["-m"]);
    private static Option<int> ThreadsOption() => Opt.Int("--threads", 0, "worker threads (0: one per physical core)", 0, 1024, ["-t"]);
    private static Option<string> CacheTypeOption() => Opt.Text("--cache-type", "f16", "the KV cache's storage", "f32|f16|bf16|q8_0");
    private static Option<string> RepackOption() => Opt.OnOff("--repack", true, "Q4_0/Q8_0 rows interleaved for decoding at load");
    private static Option<bool> NoMmapOption() => Opt.Flag("--no-mmap", "read the weights into private memory instead of mapping the files");
    private static Option<string> QuantOption() => Opt.Text("--quant", null, "quantize float weights at load (default: as stored)", "q8_0|q4_0|q4_k|q5_k|q6_k|f16|bf16");
    private static Option<string> TokenizerOption() => Opt.Text("--tokenizer", null, "the tokenizer file, when it is not beside the model", "FILE");
    private static Option<string> ChatTemplateOption() => Opt.Text("--chat-template", null, "render chats with this template: a DeepSeek Jinja file, or the JSON form (README) (default: the model's)", "FILE");
    private static Option<int?> CtxOption(int min = 16) => Opt.IntOrNull("--ctx", "context length in tokens (default: the model's limit, at most 4096)", min, aliases: ["-c"]);

    /// <summary>How the weights come into memory and which engine runs them (read by <see cref="CliArgs.LoadOptions"/>).</summary>
    private static Option[] LoadOptionList(bool quant = true, bool noMmap = true) =>
    [
        .. quant ? [QuantOption()] : Array.Empty<Option>(),
        ThreadsOption(),
        CacheTypeOption(),
        .. noMmap ? [NoMmapOption()] : Array.Empty<Option>(),
        RepackOption(),
        .. Backends.Options(),
    ];

    /// <summary>The sampling options of run and chat.</summary>
    private static Option[] SamplingOptions() =>
    [
        Opt.Float("--temp", 0.6f, "sampling temperature (0: greedy)", 0, 100, ["--temperature"]),
        Opt.Float("--top-p", 0.95f, "keep the most likely tokens up to this total probability", 0.0001f, 1),
        Opt.Int("--top-k", 0, "keep the K most likely tokens (0: all)", min: 0),
        Opt.Float("--min-p", 0, "drop tokens less likely than this fraction of the most likely one", 0, 0.999f),
        Opt.Float("--repeat-penalty", 1, "penalty on tokens already in the context (1: none)", 0.0001f, 100),
        Opt.ULong("--seed", "random seed (default: a random one)"),
    ];

    /// <summary>The demo model shipped beside the executable (models/stories260K, MIT, karpathy/llama2.c).</summary>
    public static string DefaultModelPath()
    {
        string p = Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");
        if (!File.Exists(p)) throw new ModelFormatException($"{p}: the bundled demo model is missing (rebuild the CLI, or give -m MODEL)");
        return p;
    }

    /// <summary>
    /// --think on|off: the thinking switch of V3.1-style templates (absent: the template's default). A template
    /// without a switch ignores it, and says so once on stderr.
    /// </summary>
    internal static bool? Think(CliArgs a, ITokenizer tokenizer)
    {
        bool? think = a.Str("--think") switch
        {
            null => null,
            "on" => true,
            "off" => false,
            var v => throw new UsageException($"--think '{v}' is unknown (expected on or off)"),
        };
        if (think != null && tokenizer.ChatTemplate is not { HasThinkingSwitch: true })
            Console.Error.WriteLine("(--think: this model's chat template has no thinking switch; ignored)");
        return think;
    }

    private static SamplingOptions Sampling(CliArgs a) => new()
    {
        Temperature = a.Float("--temp"),
        TopP = a.Float("--top-p"),
        TopK = a.Int("--top-k"),
        MinP = a.Float("--min-p"),
        RepetitionPenalty = a.Float("--repeat-penalty"),
        Seed = a.ULong("--seed"),
    };

    private static LocalModel LoadModel(CliArgs a, bool allowDefault)
    {
        string path = (a.Str("--model") is { } m ? ModelPath(m) : null) ?? (allowDefault ? DefaultModelPath() : throw new UsageException("option -m MODEL is required"));
        return LoadQuantized(path, a.Str("--tokenizer"), a);
    }

    /// <summary>Loads with --quant, and says which float matrices it could not convert (rows not a multiple of its blocks).</summary>
    private static LocalModel LoadQuantized(string path, string? tokenizer, CliArgs a)
    {
        var kept = new System.Collections.Concurrent.ConcurrentBag<(int Cols, DeepSeekCpu.Weights.DType Type)>();
        var lm = Load(path, tokenizer, a.LoadOptions(QuantTransform(a.Str("--quant"), kept)));
        if (!kept.IsEmpty && QuantType(a.Str("--quant")!) is var q)
            Console.Error.WriteLine($"warning: --quant {q}: {kept.Count} matrices kept as {string.Join("/", kept.Select(k => k.Type).Distinct())}: " +
                $"their rows ({string.Join(", ", kept.Select(k => k.Cols).Distinct().Order())} values) are not a multiple of {q}'s {q.BlockSize()}-value blocks");
        return lm;
    }

    /// <summary>
    /// The tokenizer generation uses: the model's, or with --chat-template FILE's template (and its stop tokens). A
    /// model whose own template is not recognised gets a warning, since its prompts then go as plain text.
    /// </summary>
    internal static ITokenizer ChatTokenizer(CliArgs a, LocalModel lm)
    {
        if (a.Str("--chat-template") is { } file)
        {
            var template = ChatTemplateFile.Load(file, lm.Tokenizer);
            var stops = template is ChatTemplateFile f ? f.Stop.Select(s => lm.Tokenizer.TokenToId(s)!.Value) : [];
            return new TemplatedTokenizer(lm.Tokenizer, template, stops);
        }
        if (ChatTemplateFile.Unrecognised(lm.Tokenizer))
            Console.Error.WriteLine($"warning: the model's chat template is not one this program renders (only DeepSeek's are recognised): prompts go as plain text; give --chat-template FILE");
        return lm.Tokenizer;
    }

    /// <summary>--ctx, at most the model's limit (a larger value is capped, with a warning); default: the limit, at most 4096.</summary>
    internal static int Context(CliArgs a, ModelConfig config)
    {
        int limit = config.MaxPositionEmbeddings;
        if (a.IntOrNull("--ctx") is not { } ctx) return Math.Min(limit, 4096);
        if (ctx > limit) Console.Error.WriteLine($"warning: --ctx {ctx} is more than the model's limit of {limit} tokens (max_position_embeddings): using {limit}");
        return Math.Min(ctx, limit);
    }

    /// <summary>LocalModel.Load with its progress drawn on stderr (<see cref="ProgressView"/>).</summary>
    internal static LocalModel Load(string path, string? tokenizer, LoadOptions options) =>
        ProgressView.Run($"loading {Path.GetFileName(Path.TrimEndingDirectorySeparator(path))}", p =>
            LocalModel.Load(path, tokenizer, options, new ProgressView.Relay<LoadProgress>(x => p.Report(new Step(x.BytesDone, x.BytesTotal)))));

    /// <summary>
    /// One generation on a one-slot <see cref="ChatEngine"/> (the loop <c>chat</c> and <c>serve</c> use): the prompt is
    /// rendered as a one-turn chat with the model's template (--system adds a system message), or, with --raw or
    /// without a template, continued as plain text and echoed first, like llama-cli.
    /// </summary>
    private static Command RunCommand() => Cmd("run", "generate from a prompt", Run, [
        ModelOption(),
        Opt.Text("--prompt", null, "the prompt; - reads it from stdin (default: stdin when piped, else a greeting, or \"Once upon a time\" without a chat template)", "TEXT", ["-p"]),
        Opt.Text("--file", null, "read the prompt from FILE", "FILE", ["-f"]),
        MaxTokensOption(),
        .. SamplingOptions(),
        CtxOption(),
        Opt.Text("--system", null, "a system message before the prompt", "TEXT"),
        ChatTemplateOption(),
        Opt.Text("--think", null, "V3.1-style templates: think first (on), or answer directly (off) (default: the template's)", "on|off"),
        Opt.Flag("--raw", "continue the prompt as plain text, without the chat template"),
        Opt.Flag("--hide-reasoning", "print the answer only, not the reasoning"),
        Opt.Flag("--no-stats", "no statistics line on stderr"),
        .. ConstraintOptions(),
        ReasoningBudgetOption(),
        Opt.Text("--draft", null, "speculative decoding: a small model with the same tokenizer guesses, the model verifies", "MODEL"),
        Opt.Int("--draft-k", 4, "tokens the draft model guesses per step (with --mtp: 1 unless given)", 1, 32),
        Opt.Flag("--mtp", "speculative decoding with the model's own multi-token-prediction layer (DeepSeek-V3/R1)"),
        TokenizerOption(),
        .. LoadOptionList(),
    ]);

    private static int Run(CliArgs a)
    {
        bool mtp = a.Has("--mtp");
        if (!a.Given("--draft") && !mtp && a.Given("--draft-k")) throw new UsageException("--draft-k needs --draft MODEL or --mtp");
        if (a.Given("--draft") && mtp) throw new UsageException("--draft and --mtp exclude each other");
        int draftK = a.Int("--draft-k");
        var request = new GenerationRequest
        {
            MaxTokens = MaxTokens(a), Sampling = Sampling(a), Grammar = GrammarOption(a), ReasoningBudget = a.IntOrNull("--reasoning-budget"),
        };
        string? given = PromptText(a);
        var loadWatch = Stopwatch.StartNew();
        using var lm = LoadModel(a, allowDefault: true);
        var loadTime = loadWatch.Elapsed;
        var tokenizer = ChatTokenizer(a, lm);
        int ctx = Context(a, lm.Model.Config);
        // --draft: a small model with the same tokenizer guesses, the target verifies (same --quant and --threads)
        using var draft = a.Str("--draft") is { } dp ? LoadQuantized(ModelPath(dp), null, a) : null;
        using var speculator = draft != null ? new Speculator(draft.Model, draft.Tokenizer, tokenizer, draftK)
            : mtp ? Speculator.WithMtp(lm.Model, a.Given("--draft-k") ? draftK : 1) : null;
        using var engine = new ChatEngine(lm.Model, tokenizer, slots: 1, ctx) { Draft = speculator };
        string prompt = given ?? (tokenizer.ChatTemplate == null ? "Once upon a time" : "Hello!");
        bool chat = tokenizer.ChatTemplate != null && !a.Has("--raw");
        bool reasoning = false;
        bool? think = Think(a, tokenizer);
        int[] ids;
        if (chat)
        {
            var msgs = new List<ChatMessage>();
            if (a.Str("--system") is { } sys) msgs.Add(new ChatMessage("system", sys));
            msgs.Add(new ChatMessage("user", prompt));
            ids = engine.RenderChat(msgs, think, out reasoning);
        }
        else ids = engine.RenderCompletion(prompt);
        engine.Check(ids, request);

        var printer = new StreamPrinter(Console.Out, hideReasoning: a.Has("--hide-reasoning"));
        if (!chat) printer.Write(prompt, TextKind.Answer); // plain completion: echo the prompt, like llama-cli
        var result = new GenerationResult();
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            foreach (var d in engine.StreamAsync(ids, reasoning, request, result, cts.Token).ToBlockingEnumerable())
                printer.Write(d.Text, d.Kind);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested) { }   // Ctrl+C: what came so far, and the statistics
        finally { Console.CancelKeyPress -= onCancel; }
        printer.End(cut: result.FinishReason == FinishReason.Length);
        Explain(printer, result, request.MaxTokens, engine.ContextLength);
        if (!a.Has("--no-stats")) PrintStats(result, loadTime);
        if (speculator != null && !a.Has("--no-stats"))
            Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "[speculative: {0} target passes with guesses, {1} of {2} {5} tokens kept ({3:P0}), k = {4}]",
                speculator.Rounds, speculator.Accepted, speculator.Drafted,
                speculator.Accepted / Math.Max(1.0, speculator.Drafted), speculator.K, mtp ? "MTP" : "draft"));
        return 0;
    }

    /// <summary>--max-tokens: -1 (the default) runs until the end of the sequence or of the context, as Ollama does.</summary>
    private static Option<int> MaxTokensOption() =>
        Opt.Int("--max-tokens", -1, "tokens to generate at most; -1: until the model ends or the context is full", min: -1, aliases: ["-n", "--n-predict"]);

    private static int MaxTokens(CliArgs a) => a.Int("--max-tokens") switch
    {
        -1 => int.MaxValue,
        0 => throw new UsageException("option --max-tokens expects -1 (no limit) or at least 1, got '0'"),
        var n => n,
    };

    /// <summary>Whether stdin is a pipe or file rather than a terminal (tests replace it).</summary>
    internal static Func<bool> InputIsPiped { get; set; } = () => Console.IsInputRedirected;

    /// <summary>The prompt from -p TEXT, -p - (stdin), -f FILE, or piped stdin; null: none given.</summary>
    private static string? PromptText(CliArgs a)
    {
        if (a.Str("--file") is { } file)
        {
            if (a.Given("--prompt")) throw new UsageException("run: give -p TEXT or -f FILE, not both");
            if (!File.Exists(file)) throw new UsageException($"run: -f {file}: file not found");
            return File.ReadAllText(file).TrimEnd('\n', '\r');
        }
        if (a.Str("--prompt") is { } p) return p == "-" ? Console.In.ReadToEnd().TrimEnd('\n', '\r') : p;
        if (!InputIsPiped()) return null;
        string piped = Console.In.ReadToEnd().TrimEnd('\n', '\r');
        return piped.Trim().Length == 0 ? null : piped;
    }

    /// <summary>
    /// Says on stderr why an answer is missing or short: reasoning cut off by the token limit or the context (the answer
    /// never began), the model ending inside its reasoning, or an answer cut off.
    /// </summary>
    internal static void Explain(StreamPrinter printer, GenerationResult result, int maxTokens, int ctx)
    {
        string limit = result.CompletionTokens >= maxTokens ? $"the --max-tokens limit of {maxTokens}" : $"the end of the {ctx}-token context (--ctx)";
        if (result.FinishReason == FinishReason.Length && printer.EndedInReasoning)
            Console.Error.WriteLine(printer.HidesReasoning
                ? $"(no answer: the reasoning was cut off at {limit} before the answer began; raise it, or drop --hide-reasoning to see the reasoning)"
                : $"(the reasoning was cut off at {limit}: the answer never began)");
        else if (result.FinishReason == FinishReason.Stop && printer.HidesReasoning && printer.SawReasoning && !printer.AnswerBegan)
            Console.Error.WriteLine("(no answer: the model ended inside its reasoning; drop --hide-reasoning to see it)");
        else if (result.FinishReason == FinishReason.Length)
            Console.Error.WriteLine($"(stopped at {limit})");
    }

    /// <summary>The statistics line on stderr: the prompt tokens processed (after a reused cached prefix) and their
    /// speed, the tokens generated and the decode speed, time to first token, and why generation ended.</summary>
    internal static void PrintStats(GenerationResult s, TimeSpan? load = null)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.Error.WriteLine(string.Format(inv,
            "\n[{0}prompt {1} tokens, {2:F1} tok/s | generation {3} tokens, {4:F1} tok/s | time to first token {5:F0} ms | {6}]",
            load is { } l ? string.Format(inv, "load {0:F0} ms | ", l.TotalMilliseconds) : "",
            s.ProcessedPromptTokens, s.PromptTokensPerSecond, s.CompletionTokens, s.GenerationTokensPerSecond,
            s.TimeToFirstToken.TotalMilliseconds, s.FinishReason.ToString().ToLowerInvariant()));
    }

    private static Command LogitsCommand() => Cmd("logits", "write the logits of every position as float32", Logits, [
        ModelOption("the model (required)"),
        Opt.Text("--tokens", null, "the token ids, comma-separated (required)", "0,17,42"),
        Opt.Text("--out", null, "the output file (required)", "FILE"),
        Opt.Flag("--stepwise", "one token at a time (the decode path) instead of one batch"),
        TokenizerOption(),
        .. LoadOptionList(quant: false, noMmap: false),
    ]);

    private static int Logits(CliArgs a)
    {
        string path = ModelPath(a.Req("--model"));
        var tokens = ParseIds(a.Req("--tokens"));
        string outPath = a.Req("--out");
        using var model = ModelLoader.Load(path, a.LoadOptions());
        var config = model.Config;
        foreach (int t in tokens)
            if ((uint)t >= (uint)config.VocabSize) throw new UsageException($"logits: --tokens contains {t}, outside the vocabulary 0..{config.VocabSize - 1}");
        int vocab = config.VocabSize;
        var logits = new float[checked((long)tokens.Length * vocab)];
        using var session = model.NewSession(Math.Max(tokens.Length + 1, 16));
        if (a.Has("--stepwise"))
            for (int i = 0; i < tokens.Length; i++) session.Forward(tokens.AsSpan(i, 1), logits.AsSpan(i * vocab, vocab));
        else
            session.Forward(tokens, logits, allPositions: true);
        using (var fs = File.Create(outPath))
            fs.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()));
        Console.Error.WriteLine($"wrote {tokens.Length} x {vocab} float32 logits to {outPath}");
        return 0;
    }

    private static int[] ParseIds(string s)
    {
        try { return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray() is { Length: > 0 } r ? r : throw new FormatException(); }
        catch (FormatException) { throw new UsageException($"--tokens expects comma-separated integers like 0,17,42, got '{s}'"); }
        catch (OverflowException) { throw new UsageException($"--tokens expects comma-separated integers like 0,17,42, got '{s}'"); }
    }

    private static Command TokenizeCommand() => Cmd("tokenize", "print token ids", Tokenize, [
        ModelOption("a model or a tokenizer (required)"),
        Opt.Text("--text", null, "the text to encode", "TEXT"),
        Opt.Text("--jsonl", null, "a file of {\"text\": ...} or {\"messages\": [...]} lines", "FILE"),
        Opt.Flag("--add-special", "add the tokenizer's start token"),
    ]);

    private static int Tokenize(CliArgs a)
    {
        var tok = LocalModel.LoadTokenizerOnly(ModelPath(a.Req("--model")));
        bool add = a.Has("--add-special");
        if (a.Str("--text") is { } text)
        {
            Console.WriteLine(JsonSerializer.Serialize(tok.Encode(text, add), CliJson.Default.Int32Array));
            return 0;
        }
        string file = a.Str("--jsonl") ?? throw new UsageException("tokenize: give --text TEXT or --jsonl FILE");
        if (!File.Exists(file)) throw new UsageException($"tokenize: --jsonl file {file} not found");
        int lineNo = 0;
        var stdout = Console.Out;
        foreach (var line in File.ReadLines(file))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException) { throw new ModelFormatException($"{file}:{lineNo}: not a JSON object"); }
            using var _ = doc;
            string input;
            if (doc.RootElement.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) input = t.GetString()!;
            else if (doc.RootElement.TryGetProperty("messages", out var m) && m.ValueKind == JsonValueKind.Array)
            {
                var template = tok.ChatTemplate ?? throw new ModelFormatException($"{file}:{lineNo}: \"messages\" given but the tokenizer has no chat template");
                var msgs = m.EnumerateArray().Select(x => new ChatMessage(
                    x.GetProperty("role").GetString() ?? "user", x.GetProperty("content").GetString() ?? "")).ToList();
                input = template.Render(msgs, addGenerationPrompt: true);
            }
            else throw new ModelFormatException($"{file}:{lineNo}: expected {{\"text\": ...}} or {{\"messages\": [...]}}");
            var ids = tok.Encode(input, add);
            stdout.WriteLine(JsonSerializer.Serialize(new TokenizedText(ids, input), CliJson.Default.TokenizedText));
        }
        return 0;
    }
}

/// <summary>
/// Writes the answer stream. On a terminal reasoning is dim and framed ("Thinking..." / "...done thinking."), as
/// Ollama shows it; when piped it is framed by &lt;think&gt; tags so a script can split it. --hide-reasoning drops it.
/// </summary>
internal sealed class StreamPrinter(TextWriter output, bool hideReasoning)
{
    private readonly bool _tty = !Console.IsOutputRedirected;
    private TextKind? _current;
    private bool _atLineStart = true;
    private bool _trimAnswerStart;

    /// <summary>--hide-reasoning.</summary>
    public bool HidesReasoning => hideReasoning;

    /// <summary>The model reasoned (shown or not).</summary>
    public bool SawReasoning { get; private set; }

    /// <summary>Answer text was written.</summary>
    public bool AnswerBegan { get; private set; }

    /// <summary>The last text was reasoning: the stream ended before the answer began (set by <see cref="End"/>).</summary>
    public bool EndedInReasoning { get; private set; }

    private TextKind? _last;

    public void Write(string text, TextKind kind)
    {
        if (text.Length > 0) _last = kind;
        if (kind == TextKind.Reasoning) SawReasoning |= text.Length > 0;
        else if (text.Trim().Length > 0) AnswerBegan = true;
        if (kind == TextKind.Reasoning && hideReasoning) return;
        if (_current != kind)
        {
            bool wasReasoning = _current == TextKind.Reasoning;
            if (wasReasoning) CloseReasoning();
            if (kind == TextKind.Reasoning)
            {
                output.Write(_tty ? "\u001b[2mThinking...\n" : "<think>\n");
                _atLineStart = true;
            }
            _trimAnswerStart = kind == TextKind.Answer && wasReasoning;
            _current = kind;
        }
        if (text.Length == 0) return;
        // Drop the blank lines the model puts right after </think> so the answer starts cleanly.
        if (_trimAnswerStart) { text = text.TrimStart('\n'); if (text.Length == 0) return; _trimAnswerStart = false; }
        output.Write(text);
        output.Flush();
        _atLineStart = text.EndsWith('\n');
    }

    private void CloseReasoning(bool cut = false)
    {
        if (!_atLineStart) output.Write('\n');
        output.Write(_tty ? (cut ? "...reasoning cut off.\u001b[0m\n\n" : "...done thinking.\u001b[0m\n\n") : "</think>\n\n");
        _atLineStart = true;
    }

    /// <param name="cut">Generation stopped at the token limit or the end of the context (a reasoning still open was cut).</param>
    public void End(bool cut = false)
    {
        EndedInReasoning = _last == TextKind.Reasoning;
        if (_current == TextKind.Reasoning) CloseReasoning(cut);
        if (!_atLineStart) output.Write('\n');
        output.Flush();
        _current = null;
        _atLineStart = true;
    }
}
