using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `load [--clients 1,4,16,64] [--requests N] [--max-tokens 64] [--parallel P] [--ctx 512] [-m MODEL] [--threads N]
/// [--url URL] [--cli PATH] [--seed 1]`: the server under N concurrent clients, as vLLM's benchmark_serving and
/// llama.cpp's server bench measure it. It starts `deepseek-cpu serve` on 127.0.0.1 (the bundled demo model unless
/// -m) with one slot per client of the largest level (--parallel) and a queue long enough that nothing is refused,
/// or drives a running server (--url). At each level, N clients send streamed /v1/completions (a story opening,
/// sampled at temperature 0.8 with a seed per request, --max-tokens each) one after another until --requests have
/// been sent (default: 4 per client, at least 16). Reported per level: aggregate generated tokens/s (all completion
/// tokens over the level's wall time), requests/s, and p50/p95/p99 of the time to first token (from sending the
/// request to its first text) and of the inter-token latency (between two streamed text pieces of one answer; the
/// server streams one piece per token, except where a stop string holds text back or a token ends inside a
/// character). Bounded: every level has a fixed number of requests, and each request a timeout.
/// </summary>
internal static class LoadBench
{
    private static readonly string[] Prompts =
        ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a big", "The sun was", "Tim had a red ball"];

    private sealed record Answer(bool Ok, double Ttft, List<double> Gaps, int Tokens, string? Error);

    public static int Run(string[] args)
    {
        int[] levels = (Soak.Arg(args, "--clients") ?? "1,4,16,64").Split(',').Select(int.Parse).ToArray();
        int maxTokens = Soak.ArgInt(args, "--max-tokens", 64);
        int? requests = Soak.Arg(args, "--requests") is { } r ? int.Parse(r) : null;
        int seed = Soak.ArgInt(args, "--seed", 1);
        return RunAsync(args, levels, maxTokens, requests, seed).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(string[] args, int[] levels, int maxTokens, int? requests, int seed)
    {
        ServeProcess? server = null;
        HttpClient http;
        string target;
        if (Soak.Arg(args, "--url") is { } url)
        {
            http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(10) };
            target = url;
        }
        else
        {
            int parallel = Soak.ArgInt(args, "--parallel", levels.Max());
            var serveArgs = new List<string> { "--parallel", parallel.ToString(), "--ctx", Soak.ArgInt(args, "--ctx", 512).ToString(),
                "--queue", "4096", "--timeout", "3600", "--quiet" };
            if ((Soak.Arg(args, "-m") ?? Soak.Arg(args, "--model")) is { } model) serveArgs.AddRange(["-m", model]);
            if (Soak.Arg(args, "--threads") is { } threads) serveArgs.AddRange(["--threads", threads]);
            server = await ServeProcess.StartAsync(Soak.Arg(args, "--cli") ?? ServeProcess.FindCli(), serveArgs, TimeSpan.FromMinutes(10));
            if (server == null) return 1;
            http = server.Http;
            target = $"serve {string.Join(' ', serveArgs)}";
        }
        try
        {
            string model = await ModelId(http);
            Console.WriteLine($"load: {model} on {target}; streamed /v1/completions of {maxTokens} tokens, temperature 0.8");
            await OneRequest(http, 0, maxTokens, seed);   // warm up (JIT, first touch of the weights)
            var rows = new List<string>();
            foreach (int clients in levels)
            {
                int total = requests ?? Math.Max(16, 4 * clients);
                var (row, failed) = await Level(http, clients, total, maxTokens, seed);
                rows.Add(row);
                Console.WriteLine(row);
                if (failed > 0) Console.WriteLine($"  {failed} request(s) failed");
            }
            Console.WriteLine();
            Console.WriteLine("| clients | requests | aggregate tokens/s | requests/s | TTFT p50 / p95 / p99 (ms) | inter-token p50 / p95 / p99 (ms) |");
            Console.WriteLine("|---|---|---|---|---|---|");
            foreach (string row in rows) Console.WriteLine(row);
            return 0;
        }
        finally
        {
            server?.Dispose();
            if (server == null) http.Dispose();
        }
    }

    private static async Task<string> ModelId(HttpClient http)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync("/v1/models"));
        return doc.RootElement.GetProperty("data")[0].GetProperty("id").GetString() ?? "?";
    }

    /// <summary>One level: <paramref name="clients"/> clients share <paramref name="total"/> requests, each client sending
    /// its next as soon as its last has ended. Returns the table row and the count of failed requests.</summary>
    private static async Task<(string Row, int Failed)> Level(HttpClient http, int clients, int total, int maxTokens, int seed)
    {
        int next = 0;
        var answers = new List<Answer>();
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) <= total)
            {
                var a = await OneRequest(http, i, maxTokens, seed * 100_000 + i);
                lock (answers) answers.Add(a);
            }
        })));
        double seconds = wall.Elapsed.TotalSeconds;
        var ok = answers.Where(a => a.Ok).ToList();
        var ttft = ok.Select(a => a.Ttft * 1000).Order().ToArray();
        var itl = ok.SelectMany(a => a.Gaps).Select(g => g * 1000).Order().ToArray();
        int tokens = ok.Sum(a => a.Tokens);
        foreach (var e in answers.Where(a => !a.Ok).Select(a => a.Error).Distinct().Take(3)) Console.WriteLine($"  failed: {e}");
        string P3(double[] v) => string.Join(" / ", new[] { 50, 95, 99 }.Select(p => ServeProcess.Percentile(v, p).ToString("F1", CultureInfo.InvariantCulture)));
        string row = $"| {clients} | {ok.Count} | {(tokens / seconds).ToString("F1", CultureInfo.InvariantCulture)} | " +
                     $"{(ok.Count / seconds).ToString("F2", CultureInfo.InvariantCulture)} | {P3(ttft)} | {P3(itl)} |";
        return (row, answers.Count - ok.Count);
    }

    /// <summary>One streamed completion: the time to its first text, the gaps between its text pieces, its token count
    /// (the usage chunk's completion_tokens).</summary>
    private static async Task<Answer> OneRequest(HttpClient http, int i, int maxTokens, int seed)
    {
        string body = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["prompt"] = Prompts[i % Prompts.Length], ["max_tokens"] = maxTokens, ["temperature"] = 0.8, ["seed"] = seed,
            ["stream"] = true, ["stream_options"] = new Dictionary<string, object> { ["include_usage"] = true },
        });
        var gaps = new List<double>();
        var sw = Stopwatch.StartNew();
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var res = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            if (!res.IsSuccessStatusCode) return new Answer(false, 0, gaps, 0, $"{(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
            using var reader = new StreamReader(await res.Content.ReadAsStreamAsync());
            double first = -1, last = 0;
            int tokens = 0;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]") break;
                double now = sw.Elapsed.TotalSeconds;
                using var doc = JsonDocument.Parse(line.AsMemory(6));
                var root = doc.RootElement;
                if (root.TryGetProperty("error", out var err)) return new Answer(false, 0, gaps, 0, err.ToString());
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                    tokens = usage.GetProperty("completion_tokens").GetInt32();
                if (root.GetProperty("choices") is { } choices && choices.GetArrayLength() > 0
                    && choices[0].GetProperty("text").GetString() is { Length: > 0 })
                {
                    if (first < 0) first = now; else gaps.Add(now - last);
                    last = now;
                }
            }
            return first < 0 ? new Answer(false, 0, gaps, tokens, "no text streamed") : new Answer(true, first, gaps, tokens, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or JsonException)
        {
            return new Answer(false, 0, gaps, 0, e.GetType().Name + ": " + e.Message);
        }
    }
}
