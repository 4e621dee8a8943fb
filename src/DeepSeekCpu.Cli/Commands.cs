using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Models;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    public const string Usage = """
        deepseek-cpu: DeepSeek-R1 family on the CPU, pure .NET

        usage: deepseek-cpu <command> [options]

          run       generate from a prompt            -m MODEL -p PROMPT [-n N] [--temp T] [--top-p P] [--top-k K]
                                                       [--min-p P] [--repeat-penalty R] [--seed S] [--threads N]
                                                       [--ctx N] [--raw] [--hide-reasoning] [--system TEXT] [--tokenizer TOK]
                                                       [--think on|off]  (V3.1-style templates: think first, or answer directly)
                                                       [--quant q8_0|q4_0|q4_k] [--no-mmap] [--cache-type f16|f32|bf16|q8_0]
                                                       [--draft MODEL [--draft-k 4]]  (speculative decoding; MODEL as for -m)
                                                       [--repack on|off]  (Q4_0/Q8_0 rows interleaved for decoding; default on)
          chat      interactive multi-turn chat        -m MODEL [same sampling options]   (/reset, /exit; Ctrl+C stops an answer)
          logits    write logits as float32            -m MODEL --tokens 0,17,42 --out FILE [--stepwise]
          tokenize  print token ids                    -m MODEL_OR_TOKENIZER (--text TEXT | --jsonl FILE) [--add-special]
          info      describe a model, memory plan      -m MODEL [--ctx N] [--parallel P] [--cache-type f32|f16|bf16|q8_0]
          bench     speed and roofline (llama-bench)   -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 3] [--warmup 1] [-b BATCH] [-d DEPTH] [--quant TYPE] [--no-mmap] [--repack on|off] [--json]
                    beside the peers, alternating       ... [--llama-bench PATH] [--ik-bench PATH] [--rounds 3] [-d 0,4096] [--peer-args "-fa 1"]
                                                       ... -b 1,2,4,8 [--batched-bench PATH] [--ik-batched-bench PATH]
          quantize  write a GGUF llama.cpp can read    -m MODEL --type q8_0|q4_0|q4_k|q6_k|... -o OUT.gguf
          serve     OpenAI-compatible HTTP server     -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N]
                                                       [--name ID] [--api-key KEY] [--threads N] [--quant TYPE] [--no-mmap] [--repack on|off] [--quiet]
                                                       [--queue N] [--timeout SECONDS] [--max-body BYTES] [--max-prompt-chars N]
          pull      download a model into the cache    MODEL (org/repo, org/repo@revision, org/repo:Q4_K_M)
          list      cached models                      (name, revision, size, format)
          rm        delete a cached model              MODEL

        MODEL is a Hugging Face folder (config.json + safetensors + tokenizer.json), a .gguf file, or a llama2.c .bin
        (tokenizer.bin beside it, or --tokenizer), or a Hugging Face repo id, fetched into the Hugging Face cache
        ($HF_HOME/hub; HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE honoured). Without -m, run/chat use the bundled demo model (stories260K).
        """;

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
                                      or InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException
                                      or InvalidOperationException or NotSupportedException or OperationCanceledException
                                      or System.Text.Json.JsonException or KeyNotFoundException or FormatException
                                      or OverflowException or OutOfMemoryException)
        {
            Console.Error.WriteLine($"error: {TerminalText.Safe(e.Message.Split('\n')[0])}");   // the message may quote a file
            return 1;
        }
    }

    public static int Dispatch(string[] args)
    {
        if (args.Length == 0 || args[0] is "help" or "-h" or "--help") { Console.WriteLine(Usage); return args.Length == 0 ? 2 : 0; }
        string cmd = args[0];
        var rest = args[1..];
        return cmd switch
        {
            "run" => Run(rest),
            "chat" => Chat(rest),
            "logits" => Logits(rest),
            "tokenize" => Tokenize(rest),
            "info" => Info(rest),
            "bench" => Bench(rest),
            "quantize" => QuantizeCmd(rest),
            "serve" => Serve(rest),
            "pull" => Pull(rest),
            "list" => List(rest),
            "rm" => Remove(rest),
            _ => throw new UsageException($"unknown command '{cmd}' (expected run, chat, logits, tokenize, info, bench, quantize, serve, pull, list or rm)"),
        };
    }

    private static readonly string[] SamplingValues = ["--temp", "--top-p", "--top-k", "--min-p", "--repeat-penalty", "--seed"];
    private static readonly Dictionary<string, string> Aliases = new()
    {
        ["-m"] = "--model", ["-p"] = "--prompt", ["-n"] = "--max-tokens", ["-t"] = "--threads", ["-c"] = "--ctx",
        ["--n-predict"] = "--max-tokens", ["--temperature"] = "--temp",
    };

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
        Temperature = a.Float("--temp", 0.6f, 0, 100),
        TopP = a.Float("--top-p", 0.95f, 0.0001f, 1),
        TopK = a.Int("--top-k", 0, 0),
        MinP = a.Float("--min-p", 0, 0, 0.999f),
        RepetitionPenalty = a.Float("--repeat-penalty", 1, 0.0001f, 100),
        Seed = a.ULong("--seed"),
    };

    private static LocalModel LoadModel(CliArgs a, bool allowDefault)
    {
        string path = (a.Str("--model") is { } m ? ModelPath(m) : null) ?? (allowDefault ? DefaultModelPath() : throw new UsageException("option -m MODEL is required"));
        return LocalModel.Load(path, a.Str("--tokenizer"), a.LoadOptions(QuantTransform(a.Str("--quant"))));
    }

    /// <summary>
    /// One generation on a one-slot <see cref="ChatEngine"/> (the loop <c>chat</c> and <c>serve</c> use): the prompt is
    /// rendered as a one-turn chat with the model's template (--system adds a system message), or, with --raw or
    /// without a template, continued as plain text and echoed first, like llama-cli.
    /// </summary>
    private static int Run(string[] args)
    {
        var a = new CliArgs("run", args,
            ["--model", "--prompt", "--max-tokens", "--threads", "--cache-type", "--ctx", "--tokenizer", "--system", "--think", "--quant", "--draft", "--draft-k", "--repack", .. SamplingValues, .. Backends.Options],
            ["--raw", "--hide-reasoning", "--no-stats", "--no-mmap"], Aliases);
        if (a.Str("--draft") == null && a.Str("--draft-k") != null) throw new UsageException("--draft-k needs --draft MODEL");
        int draftK = a.Int("--draft-k", 4, 1, 32);
        var request = new GenerationRequest { MaxTokens = a.Int("--max-tokens", 256, 1), Sampling = Sampling(a) };
        var loadWatch = Stopwatch.StartNew();
        using var lm = LoadModel(a, allowDefault: true);
        var loadTime = loadWatch.Elapsed;
        int ctx = a.Int("--ctx", Math.Min(lm.Model.Config.MaxPositionEmbeddings, 4096), 16);
        // --draft: a small model with the same tokenizer guesses, the target verifies (same --quant and --threads)
        using var draft = a.Str("--draft") is { } dp ? LocalModel.Load(ModelPath(dp), null, a.LoadOptions(QuantTransform(a.Str("--quant")))) : null;
        using var speculator = draft == null ? null : new Speculator(draft.Model, draft.Tokenizer, lm.Tokenizer, draftK);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer, slots: 1, ctx) { Draft = speculator };
        string prompt = a.Str("--prompt") ?? (lm.Tokenizer.ChatTemplate == null ? "Once upon a time" : "Hello!");
        bool chat = lm.Tokenizer.ChatTemplate != null && !a.Has("--raw");
        bool reasoning = false;
        bool? think = Think(a, lm.Tokenizer);
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
        printer.End();
        if (!a.Has("--no-stats")) PrintStats(result, loadTime);
        if (speculator != null && !a.Has("--no-stats"))
            Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "[speculative: {0} target passes with guesses, {1} of {2} draft tokens kept ({3:P0}), k = {4}]",
                speculator.Rounds, speculator.Accepted, speculator.Drafted,
                speculator.Accepted / Math.Max(1.0, speculator.Drafted), speculator.K));
        return 0;
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

    private static int Logits(string[] args)
    {
        var a = new CliArgs("logits", args, ["--model", "--tokens", "--out", "--threads", "--cache-type", "--tokenizer", "--repack", .. Backends.Options], ["--stepwise"], Aliases);
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

    private static int Tokenize(string[] args)
    {
        var a = new CliArgs("tokenize", args, ["--model", "--text", "--jsonl"], ["--add-special"], Aliases);
        var tok = LocalModel.LoadTokenizerOnly(ModelPath(a.Req("--model")));
        bool add = a.Has("--add-special");
        if (a.Str("--text") is { } text)
        {
            Console.WriteLine(JsonSerializer.Serialize(tok.Encode(text, add)));
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
            stdout.WriteLine(JsonSerializer.Serialize(new { ids, text = input }));
        }
        return 0;
    }
}

/// <summary>
/// Writes the answer stream. On a terminal reasoning is dim and framed ("Thinking..." / "...done thinking."), as
/// Ollama shows it; when piped it is framed by &lt;think&gt; tags so a script can split it. --hide-reasoning drops it.
/// </summary>
public sealed class StreamPrinter(TextWriter output, bool hideReasoning)
{
    private readonly bool _tty = !Console.IsOutputRedirected;
    private TextKind? _current;
    private bool _atLineStart = true;
    private bool _trimAnswerStart;

    public void Write(string text, TextKind kind)
    {
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

    private void CloseReasoning()
    {
        if (!_atLineStart) output.Write('\n');
        output.Write(_tty ? "...done thinking.\u001b[0m\n\n" : "</think>\n\n");
        _atLineStart = true;
    }

    public void End()
    {
        if (_current == TextKind.Reasoning) CloseReasoning();
        if (!_atLineStart) output.Write('\n');
        output.Flush();
        _current = null;
        _atLineStart = true;
    }
}
