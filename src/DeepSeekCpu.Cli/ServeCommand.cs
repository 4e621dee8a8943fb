using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using Microsoft.Extensions.Hosting;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    /// <summary>
    /// deepseek-cpu serve -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--name ID] [--api-key KEY]: the
    /// OpenAI-compatible HTTP API (llama-server / ollama serve). Each of the N slots holds its own KV cache of --ctx
    /// tokens; more concurrent requests wait for a slot, at most --queue of them (503 beyond). --timeout, --max-body and
    /// --max-prompt-chars bound one request (<see cref="ServerLimits"/>). Ctrl+C stops the server.
    /// </summary>
    private static int Serve(string[] args)
    {
        var a = new CliArgs("serve", args,
            ["--model", "--host", "--port", "--parallel", "--ctx", "--threads", "--cache-type", "--tokenizer", "--quant", "--repack", "--name", "--api-key",
             "--queue", "--timeout", "--max-body", "--max-prompt-chars", .. Backends.Options],
            ["--no-mmap", "--quiet"], Aliases);
        string host = a.Str("--host") ?? "127.0.0.1";
        int port = a.Int("--port", 8080, 0, 65535);
        int parallel = a.Int("--parallel", 1, 1, 64);
        var d = ServerLimits.Default;
        var limits = d with
        {
            Queue = a.Int("--queue", d.Queue, 0, 100_000),
            RequestTimeout = TimeSpan.FromSeconds(a.Int("--timeout", (int)d.RequestTimeout.TotalSeconds, 1, 7 * 24 * 3600)),
            MaxBodyBytes = a.Int("--max-body", (int)d.MaxBodyBytes, 1024, int.MaxValue),
            MaxPromptChars = a.Int("--max-prompt-chars", d.MaxPromptChars, 0, int.MaxValue),   // 0: 32 per context token
        };
        using var lm = LoadModel(a, allowDefault: true);
        int ctx = a.Int("--ctx", Math.Min(lm.Model.Config.MaxPositionEmbeddings, 4096), 16);
        string id = a.Str("--name") ?? (a.Str("--model") is { } m && !File.Exists(m) && !Directory.Exists(m) && DeepSeekCpu.Hub.ModelReference.TryParse(m, out var named)
            ? named.ToString()   // a model given by name is served by that name, not its snapshot's commit
            : Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(lm.Path)));
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer, parallel, ctx);
        string url = $"http://{(host.Contains(':') ? $"[{host}]" : host)}:{port}";
        // --api-key, or DEEPSEEK_CPU_API_KEY (keeps the key out of the process list)
        string? apiKey = a.Str("--api-key") ?? Environment.GetEnvironmentVariable("DEEPSEEK_CPU_API_KEY");
        var app = OpenAiServer.Build(engine, id, url, a.Has("--quiet") ? null : Console.Error, apiKey, limits);
        try { app.Start(); }
        catch (IOException e) { throw new IOException($"serve: cannot listen on {url}: {e.Message}"); }
        Console.Error.WriteLine($"serving '{id}' on {string.Join(", ", app.Urls)} ({parallel} slot{(parallel > 1 ? "s" : "")} of {engine.ContextLength} tokens); " +
                                "POST /v1/chat/completions, /v1/completions; GET /v1/models, /health. Ctrl+C stops.");
        app.WaitForShutdown();
        return 0;
    }
}
