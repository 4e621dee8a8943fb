using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `soak [--seconds 150] [--clients 6] [--parallel 2] [--cli PATH] [--seed 1]`: starts `deepseek-cpu serve` with the
/// bundled demo model (stories260K) on 127.0.0.1 and puts a bounded mixed load on it for a fixed time: greedy and
/// sampled requests, streaming and not, chat and completion, clients that leave in the middle of a stream, and bad
/// requests (invalid JSON, wrong types, another model, a body over the limit). It reports requests served, answers by
/// status, p50/p95/p99 latency, the server's RSS at start and end, and checks that every greedy answer equals the
/// same request served alone afterwards. Exit code 1 if an answer differs, a status was not the expected one, or the
/// server died.
/// </summary>
internal static class Soak
{
    private sealed record Outcome(string Kind, int Status, double Seconds, string? Key, string? Text, bool Expected);

    private const int MaxBody = 64 * 1024;   // --max-body for the run: a body beyond it must get 413

    private static readonly string[] Prompts =
        ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a big", "The sun was", "Tim had a red ball"];

    public static int Run(string[] args)
    {
        int seconds = ArgInt(args, "--seconds", 150);
        int clients = ArgInt(args, "--clients", 6);
        int parallel = ArgInt(args, "--parallel", 2);
        int seed = ArgInt(args, "--seed", 1);
        string cli = Arg(args, "--cli") ?? ServeProcess.FindCli();
        return RunAsync(cli, seconds, clients, parallel, seed).GetAwaiter().GetResult();
    }

    internal static string? Arg(string[] args, string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

    internal static int ArgInt(string[] args, string name, int def) => Arg(args, name) is { } s ? int.Parse(s) : def;

    private static async Task<int> RunAsync(string cli, int seconds, int clients, int parallel, int seed)
    {
        using var server = await ServeProcess.StartAsync(cli, ["--parallel", parallel.ToString(), "--ctx", "256", "--queue", "32",
            "--max-body", MaxBody.ToString(), "--timeout", "60", "--quiet"], TimeSpan.FromSeconds(120));
        if (server == null) return 1;
        var http = server.Http;
        int port = server.Port;
        await Greedy(http, new Random(0), stream: false, chat: false);   // warm up (JIT) before the first RSS reading
        double rssStart = server.RssMiB();
        Console.WriteLine($"soak: {clients} clients for {seconds} s against serve --parallel {parallel} (stories260K, port {port}); RSS at start {rssStart:F0} MiB");

        var outcomes = new List<Outcome>();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        // RSS every tenth of the run: whether it levels off or keeps growing
        var rssSeries = new List<double>();
        var sampler = Task.Run(async () =>
        {
            for (int k = 1; k <= 10; k++)
            {
                await Task.Delay(TimeSpan.FromSeconds(seconds / 10.0));
                if (!server.Process.HasExited) lock (rssSeries) rssSeries.Add(server.RssMiB());
            }
        });
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var rng = new Random(seed * 1000 + c);
            var mine = new List<Outcome>();
            while (DateTime.UtcNow < deadline)
            {
                try { mine.Add(await OneRequest(http, rng)); }
                catch (Exception e) { mine.Add(new Outcome("transport: " + e.GetType().Name + ": " + e.Message, 0, 0, null, null, false)); }
            }
            lock (outcomes) outcomes.AddRange(mine);
        })).ToArray();
        await Task.WhenAll(tasks);
        await sampler;
        double rssLoadEnd = server.RssMiB();
        Console.WriteLine($"RSS every {seconds / 10.0:F0} s under load (MiB): {string.Join(" ", rssSeries.Select(r => r.ToString("F0")))}");

        // every greedy answer against the same request served alone
        int mismatches = 0, checkedKeys = 0;
        var aloneMs = new List<double>();
        foreach (var group in outcomes.Where(o => o.Key != null && o.Status == 200).GroupBy(o => o.Key!))
        {
            var (_, _, stream, chat, prompt, maxTokens) = ParseKey(group.Key);
            var single = await Send(http, Body(chat, prompt, maxTokens, stream, temperature: 0, seed: null), chat, stream, CancellationToken.None);
            string alone = single.Text!;
            aloneMs.Add(single.Seconds * 1000);
            checkedKeys++;
            foreach (var o in group)
                if (o.Text != alone)
                {
                    if (mismatches++ < 5) Console.WriteLine($"DIFFERS {group.Key}: under load \"{o.Text}\" alone \"{alone}\"");
                }
        }
        double rssEnd = server.RssMiB();

        Report(outcomes, seconds, rssStart, rssLoadEnd, rssEnd, checkedKeys, mismatches);
        var a = aloneMs.Order().ToArray();
        Console.WriteLine($"latency of the greedy requests served alone (ms, {a.Length}): p50 {P(a, 50):F1}  p95 {P(a, 95):F1}  max {P(a, 100):F1}");
        bool unexpected = outcomes.Any(o => !o.Expected);
        bool died = server.Process.HasExited;
        if (died) Console.WriteLine($"server exited during the run:\n{server.Log}");
        return mismatches == 0 && !unexpected && !died ? 0 : 1;
    }

    private static void Report(List<Outcome> outcomes, int seconds, double rssStart, double rssLoadEnd, double rssEnd, int checkedKeys, int mismatches)
    {
        Console.WriteLine($"requests: {outcomes.Count} in {seconds} s ({outcomes.Count / (double)seconds:F1}/s)");
        foreach (var g in outcomes.GroupBy(o => o.Kind).OrderBy(g => g.Key))
            Console.WriteLine($"  {g.Key,-28} {g.Count(),6}  statuses {string.Join(", ", g.GroupBy(o => o.Status).OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Count()}"))}" +
                              (g.Any(o => !o.Expected) ? $"  UNEXPECTED {g.Count(o => !o.Expected)}" : ""));
        Console.WriteLine("by status: " + string.Join(", ", outcomes.GroupBy(o => o.Status).OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Count()}")));
        var served = outcomes.Where(o => o.Status == 200 && !o.Kind.StartsWith("cancelled")).Select(o => o.Seconds * 1000).Order().ToArray();
        var bad = outcomes.Where(o => o.Status is >= 400 and < 500).Select(o => o.Seconds * 1000).Order().ToArray();
        Console.WriteLine($"latency of complete answers (ms, {served.Length}): p50 {P(served, 50):F1}  p95 {P(served, 95):F1}  p99 {P(served, 99):F1}  max {P(served, 100):F1}");
        Console.WriteLine($"latency of 4xx answers (ms, {bad.Length}): p50 {P(bad, 50):F1}  p95 {P(bad, 95):F1}  p99 {P(bad, 99):F1}");
        Console.WriteLine($"RSS: start {rssStart:F0} MiB, end of load {rssLoadEnd:F0} MiB, after the checks {rssEnd:F0} MiB");
        Console.WriteLine($"greedy answers: {outcomes.Count(o => o.Key != null && o.Status == 200)} over {checkedKeys} distinct requests, each compared with the request served alone: {mismatches} differ");
        Console.WriteLine($"unexpected outcomes: {outcomes.Count(o => !o.Expected)}");
    }

    private static double P(double[] sorted, int p) => ServeProcess.Percentile(sorted, p);

    // ---- the load ----

    private static async Task<Outcome> OneRequest(HttpClient http, Random rng)
    {
        int pick = rng.Next(100);
        if (pick < 35) return await Greedy(http, rng, stream: rng.Next(2) == 0, chat: rng.Next(2) == 0);
        if (pick < 55)
        {
            // sampled: seeded, so the answer is reproducible too, but only greedy ones are compared
            bool chat = rng.Next(2) == 0, stream = rng.Next(2) == 0;
            var r = await Send(http, Body(chat, Prompts[rng.Next(Prompts.Length)], rng.Next(16, 96), stream, 0.8, rng.Next()), chat, stream, CancellationToken.None);
            return r with { Kind = $"sampled {(stream ? "stream" : "whole")}", Expected = r.Status == 200 };
        }
        if (pick < 70)
        {
            // a client that leaves after the first few events of a stream
            bool chat = rng.Next(2) == 0;
            using var cts = new CancellationTokenSource();
            var r = await Send(http, Body(chat, Prompts[rng.Next(Prompts.Length)], 200, true, 0.8, rng.Next()), chat, true, cts.Token, leaveAfterEvents: rng.Next(1, 6), leave: cts);
            return r with { Kind = "cancelled mid-stream", Expected = r.Status == 200 };
        }
        return await BadRequest(http, rng);
    }

    private static async Task<Outcome> Greedy(HttpClient http, Random rng, bool stream, bool chat)
    {
        string prompt = Prompts[rng.Next(Prompts.Length)];
        int maxTokens = new[] { 16, 32, 64 }[rng.Next(3)];
        var r = await Send(http, Body(chat, prompt, maxTokens, stream, temperature: 0, seed: null), chat, stream, CancellationToken.None);
        return r with { Kind = $"greedy {(stream ? "stream" : "whole")}", Key = Key(stream, chat, prompt, maxTokens), Expected = r.Status == 200 };
    }

    private static string Key(bool stream, bool chat, string prompt, int maxTokens) => $"{(stream ? "stream" : "whole")}|{(chat ? "chat" : "completion")}|{prompt}|{maxTokens}";

    private static (string, int, bool stream, bool chat, string prompt, int maxTokens) ParseKey(string key)
    {
        var p = key.Split('|');
        return (key, 0, p[0] == "stream", p[1] == "chat", p[2], int.Parse(p[3]));
    }

    private static string Body(bool chat, string prompt, int maxTokens, bool stream, double temperature, int? seed)
    {
        var o = new Dictionary<string, object?> { ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["stream"] = stream };
        if (seed is int s) o["seed"] = s;
        if (chat) o["messages"] = new[] { new { role = "user", content = prompt } };
        else o["prompt"] = prompt;
        return JsonSerializer.Serialize(o);
    }

    /// <summary>Requests the server must refuse, each with the status it must answer.</summary>
    private static async Task<Outcome> BadRequest(HttpClient http, Random rng)
    {
        (string name, string body, int status)[] cases =
        [
            ("invalid JSON", "{\"prompt\": \"Once", 400),
            ("wrong type", """{"prompt": "Once", "max_tokens": "ten"}""", 400),
            ("content as a number", """{"messages": [{"role": "user", "content": [{"type": 7}]}]}""", 400),
            ("another model", """{"model": "gpt-4", "prompt": "Once"}""", 404),
            ("n = 2", """{"prompt": "Once", "n": 2}""", 400),
            ("lone surrogate", """{"prompt": "\ud800"}""", 400),
            ("body over the limit", "{\"prompt\": \"" + new string('a', MaxBody + 100) + "\"}", 413),
        ];
        var (name, body, status) = cases[rng.Next(cases.Length)];
        bool chat = body.Contains("messages");
        var sw = Stopwatch.StartNew();
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var resp = await http.PostAsync(chat ? "/v1/chat/completions" : "/v1/completions", content);
        string text = await resp.Content.ReadAsStringAsync();
        bool expected = (int)resp.StatusCode == status && text.Contains("\"error\"");
        return new Outcome($"bad: {name}", (int)resp.StatusCode, sw.Elapsed.TotalSeconds, null, null, expected);
    }

    /// <summary>Sends one request; a stream's text is the concatenation of its deltas. With <paramref name="leave"/> the client goes after a few events.</summary>
    private static async Task<Outcome> Send(HttpClient http, string body, bool chat, bool stream, CancellationToken cancel,
        int leaveAfterEvents = int.MaxValue, CancellationTokenSource? leave = null)
    {
        var sw = Stopwatch.StartNew();
        using var req = new HttpRequestMessage(HttpMethod.Post, chat ? "/v1/chat/completions" : "/v1/completions")
        { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cancel);
        int status = (int)resp.StatusCode;
        if (status != 200 || !stream)
        {
            string json = await resp.Content.ReadAsStringAsync(cancel);
            string? text = null;
            if (status == 200)
            {
                using var doc = JsonDocument.Parse(json);
                var choice = doc.RootElement.GetProperty("choices")[0];
                text = chat ? choice.GetProperty("message").GetProperty("content").GetString() : choice.GetProperty("text").GetString();
            }
            return new Outcome("", status, sw.Elapsed.TotalSeconds, null, text, true);
        }
        var sb = new StringBuilder();
        int events = 0;
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cancel));
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            if (!line.StartsWith("data: ")) continue;
            string data = line[6..];
            if (data == "[DONE]") break;
            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0)
            {
                var c = choices[0];
                if (chat && c.GetProperty("delta").TryGetProperty("content", out var d) && d.ValueKind == JsonValueKind.String) sb.Append(d.GetString());
                if (!chat && c.TryGetProperty("text", out var t)) sb.Append(t.GetString());
            }
            if (++events >= leaveAfterEvents && leave != null)
            {
                leave.Cancel();   // the client goes away in the middle of the answer
                return new Outcome("", status, sw.Elapsed.TotalSeconds, null, null, true);
            }
        }
        return new Outcome("", status, sw.Elapsed.TotalSeconds, null, sb.ToString(), true);
    }
}
