using System.CommandLine;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using Microsoft.Extensions.Hosting;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// deepseek-cpu serve -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--name ID] [--api-key KEY]: the
    /// OpenAI-compatible HTTP API (llama-server / ollama serve). Each of the N slots holds its own KV cache of --ctx
    /// tokens; more concurrent requests wait for a slot, at most --queue of them (503 beyond). --timeout, --max-body and
    /// --max-prompt-chars bound one request (<see cref="ServerLimits"/>). --log-format and --cors: <see cref="ServerOperations"/>.
    /// SIGTERM or Ctrl+C stops the server gracefully: open streams end with their final event, the exit code is 0.
    /// </summary>
    private static Command ServeCommand() => Cmd("serve", "OpenAI-compatible HTTP server", Serve, [
        ModelOption(),
        Opt.Text("--host", "127.0.0.1", "the address to listen on", "HOST"),
        Opt.Int("--port", 8080, "the port to listen on", 0, 65535),
        Opt.Int("--parallel", 1, "slots: sequences decoded together, each with its own KV cache", 1, 64),
        Opt.Flag("--mtp", "speculative decoding with the model's MTP layer while one request decodes (DeepSeek-V3/R1)"),
        CtxOption(),
        Opt.Text("--name", null, "the model id the API reports (default: the model's name)", "ID"),
        Opt.Text("--api-key", null, "require this bearer key (or set DEEPSEEK_CPU_API_KEY)", "KEY"),
        Opt.Int("--queue", ServerLimits.Default.Queue, "requests waiting for a slot at most (503 beyond)", 0, 100_000),
        Opt.Int("--timeout", (int)ServerLimits.Default.RequestTimeout.TotalSeconds, "seconds one request may take", 1, 7 * 24 * 3600),
        Opt.Int("--max-body", (int)ServerLimits.Default.MaxBodyBytes, "bytes of a request body at most", 1024, int.MaxValue),
        Opt.Int("--max-prompt-chars", ServerLimits.Default.MaxPromptChars, "characters of a prompt at most (0: 32 per context token)", 0, int.MaxValue),
        ReasoningBudgetOption(),
        Opt.Flag("--quiet", "no request log on stderr"),
        ChatTemplateOption(),
        Opt.Text("--log-format", "text", "the request log: a text line or a JSON object per request", "text|json"),
        Opt.Text("--cors", null, "origins whose web pages may call the API (comma-separated, or *)", "ORIGINS"),
        TokenizerOption(),
        .. LoadOptionList(),
    ]);

    private static int Serve(CliArgs a)
    {
        string host = a.Str("--host")!;
        int port = a.Int("--port");
        int parallel = a.Int("--parallel");
        var limits = ServerLimits.Default with
        {
            Queue = a.Int("--queue"),
            RequestTimeout = TimeSpan.FromSeconds(a.Int("--timeout")),
            MaxBodyBytes = a.Int("--max-body"),
            MaxPromptChars = a.Int("--max-prompt-chars"),
        };
        var ops = ServerOperations.Default with
        {
            LogFormat = a.Str("--log-format") switch
            {
                "text" => LogFormat.Text, "json" => LogFormat.Json,
                var f => throw new UsageException($"serve: option --log-format expects text or json, got '{f}'"),
            },
            CorsOrigins = a.Str("--cors")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [],
        };
        using var lm = LoadModel(a, allowDefault: true);
        var tokenizer = ChatTokenizer(a, lm);
        int ctx = Context(a, lm.Model.Config);
        string id = a.Str("--name") ?? (a.Str("--model") is { } m && !File.Exists(m) && !Directory.Exists(m) && DeepSeekCpu.Hub.ModelReference.TryParse(m, out var named)
            ? named.ToString()   // a model given by name is served by that name, not its snapshot's commit
            : Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(lm.Path)));
        using var mtp = a.Has("--mtp") ? Speculator.WithMtp(lm.Model) : null;
        using var engine = new ChatEngine(lm.Model, tokenizer, parallel, ctx) { ReasoningBudget = a.IntOrNull("--reasoning-budget"), Draft = mtp };
        string url = $"http://{(host.Contains(':') ? $"[{host}]" : host)}:{port}";
        // --api-key, or DEEPSEEK_CPU_API_KEY (keeps the key out of the process list)
        string? apiKey = a.Str("--api-key") ?? Environment.GetEnvironmentVariable("DEEPSEEK_CPU_API_KEY");
        var app = OpenAiServer.Build(engine, id, url, a.Has("--quiet") ? null : Console.Error, apiKey, limits, ops);
        try { app.Start(); }
        catch (IOException e) { throw new IOException($"serve: cannot listen on {url}: {e.Message}"); }
        Console.Error.WriteLine($"serving '{id}' on {string.Join(", ", app.Urls)} ({parallel} slot{(parallel > 1 ? "s" : "")} of {engine.ContextLength} tokens); " +
                                "POST /v1/chat/completions, /v1/completions; GET /v1/models, /health, /metrics; the chat page at /. Ctrl+C stops.");
        app.WaitForShutdown();
        return 0;
    }
}
