using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using Microsoft.AspNetCore.Builder;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// The operator's side of the server over real HTTP on loopback: Prometheus metrics whose counts match the requests
/// sent (token counts known from the Python reference of the demo model), the queue and slot gauges while a scripted
/// model is held at its gate, one log line per request in text and JSON, GET /v1/models/{id}, CORS, and a stream that
/// ends with its final event when the server shuts down. Every wait is bounded.
/// </summary>
public sealed class OperationsTests : IAsyncDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private WebApplication _app = null!;
    private ChatEngine _engine = null!;
    private IDisposable? _owned;
    private ScriptedModel? _scripted;
    private HttpClient _http = null!;

    private async Task Start(ChatEngine engine, string id = "stories260K", TextWriter? log = null, ServerOperations? ops = null, string? apiKey = null, IDisposable? owned = null)
    {
        (_engine, _owned) = (engine, owned);
        _app = OpenAiServer.Build(engine, id, "http://127.0.0.1:0", log, apiKey, ops: ops);
        await _app.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(_app.Urls.First()), Timeout = Bound };
    }

    private Task StartStories(int slots = 1, TextWriter? log = null, ServerOperations? ops = null)
    {
        var lm = LocalModel.Load(TestPaths.Stories260K);
        return Start(new ChatEngine(lm.Model, lm.Tokenizer, slots), log: log, ops: ops, owned: lm);
    }

    /// <summary>A scripted R1 model with a long reasoning, held at its gate: each forward pass waits for the test.</summary>
    private Task StartGated(int slots = 1)
    {
        var (model, tok, _, _) = ScriptedModel.R1(string.Concat(Enumerable.Repeat("thinking step by step. ", 50)), "\n\nDone.");
        _scripted = model;
        model.Gated = true;
        return Start(new ChatEngine(model, tok, slots), "r1");
    }

    public async ValueTask DisposeAsync()
    {
        if (_scripted != null) _scripted.Gated = false;
        _http?.Dispose();
        if (_app != null) { await _app.StopAsync(); await _app.DisposeAsync(); }
        _engine?.Dispose();
        _owned?.Dispose();
    }

    private Task<HttpResponseMessage> Post(string path, string json) =>
        _http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    /// <summary>The samples of a Prometheus text exposition (prometheus.io/docs/instrumenting/exposition_formats):
    /// "name{labels} value" per line, comments (# HELP, # TYPE) apart.</summary>
    private async Task<(Dictionary<string, double> Samples, string Text)> Scrape()
    {
        using var res = await _http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("text/plain", res.Content.Headers.ContentType?.MediaType);
        string text = await res.Content.ReadAsStringAsync();
        var samples = new Dictionary<string, double>();
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int sp = line.LastIndexOf(' ');
            samples[line[..sp]] = double.Parse(line[(sp + 1)..], CultureInfo.InvariantCulture);
        }
        return (samples, text);
    }

    [Fact]
    public async Task Metrics_count_requests_tokens_and_token_latencies()
    {
        await StartStories();
        for (int i = 0; i < 3; i++)
        {
            using var ok = await Post("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}""");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var bad = await Post("/v1/completions", """{"prompt": "Once upon a time", "temperature": 5}""")) Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using (var missing = await _http.GetAsync("/v1/models/another")) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using (var noRoute = await _http.GetAsync("/no/such/path")) Assert.Equal(HttpStatusCode.NotFound, noRoute.StatusCode);

        var (m, text) = await Scrape();
        Assert.Contains("# TYPE deepseekcpu_requests_total counter", text);
        Assert.Contains("# TYPE deepseekcpu_time_to_first_token_seconds histogram", text);
        Assert.Equal(3, m["""deepseekcpu_requests_total{route="/v1/completions",status="200"}"""]);
        Assert.Equal(1, m["""deepseekcpu_requests_total{route="/v1/completions",status="400"}"""]);
        Assert.Equal(1, m["""deepseekcpu_requests_total{route="/v1/models/{**id}",status="404"}"""]);
        Assert.Equal(1, m["""deepseekcpu_requests_total{route="other",status="404"}"""]);   // unknown paths share one label
        Assert.Equal(4, m["""deepseekcpu_request_duration_seconds_count{route="/v1/completions"}"""]);
        // the reference's prompt is BOS + 4 tokens; each answer has 40 tokens, the first of which has a TTFT, the
        // other 39 an inter-token latency
        Assert.Equal(3 * 5, m["deepseekcpu_prompt_tokens_total"]);
        Assert.Equal(3 * 40, m["deepseekcpu_generation_tokens_total"]);
        Assert.Equal(3, m["deepseekcpu_time_to_first_token_seconds_count"]);
        Assert.Equal(3 * 39, m["deepseekcpu_inter_token_latency_seconds_count"]);
        Assert.Equal(3 * 39, m["""deepseekcpu_inter_token_latency_seconds_bucket{le="+Inf"}"""]);
        Assert.True(m["deepseekcpu_time_to_first_token_seconds_sum"] > 0);
        // idle: one slot, none busy, nothing waiting; its cache keeps the last request's prompt and the 39 answer
        // tokens fed back (the 40th was sampled, never fed)
        Assert.Equal(1, m["deepseekcpu_slots"]);
        Assert.Equal(0, m["deepseekcpu_slots_busy"]);
        Assert.Equal(0, m["deepseekcpu_requests_waiting"]);
        Assert.Equal(5 + 39, m["deepseekcpu_kv_cache_tokens"]);
        Assert.Equal((5 + 39) / (double)_engine.ContextLength, m["deepseekcpu_kv_cache_usage_ratio"], 1e-9);
    }

    [Fact]
    public async Task Gauges_show_the_busy_slot_and_the_waiting_request()
    {
        await StartGated(slots: 1);
        const string body = """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}""";
        var first = Post("/v1/chat/completions", body);
        var second = Post("/v1/chat/completions", body.Replace("hi", "hello"));
        // one holds the only slot at the gate, the other waits for it (polled: each is counted once the scheduler has
        // admitted or queued it)
        var until = DateTime.UtcNow + Bound;
        Dictionary<string, double> m;
        do
        {
            await Task.Delay(20);
            (m, _) = await Scrape();
        } while (!(m["deepseekcpu_requests_waiting"] == 1 && m["deepseekcpu_slots_busy"] == 1) && DateTime.UtcNow < until);
        Assert.Equal(1, m["deepseekcpu_requests_waiting"]);
        Assert.Equal(1, m["deepseekcpu_slots_busy"]);
        _scripted!.Gated = false;
        using (var r1 = await first) Assert.Equal(HttpStatusCode.OK, r1.StatusCode);
        using (var r2 = await second) Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
        (m, _) = await Scrape();
        Assert.Equal(0, m["deepseekcpu_requests_waiting"]);
        Assert.Equal(0, m["deepseekcpu_slots_busy"]);
        Assert.Equal(2 * 3, m["deepseekcpu_generation_tokens_total"]);
    }

    [Fact]
    public async Task Json_log_has_one_line_per_request_with_its_tokens()
    {
        var log = new StringWriter();
        await StartStories(log: log, ops: new ServerOperations { LogFormat = LogFormat.Json });
        using (var ok = await Post("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}""")) Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using (var bad = await Post("/v1/chat/completions", """{"messages": 3}""")) Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        (await _http.GetAsync("/health")).Dispose();    // probes are not logged
        (await _http.GetAsync("/metrics")).Dispose();
        (await _http.GetAsync("/v1/models")).Dispose();

        string[] lines = await LogLines(log, 3);
        Assert.Equal(3, lines.Length);
        // each line is written once its response has gone out, so a client can be faster than the line: by path
        string Line(string path) => Assert.Single(lines, l => l.Contains($"\"path\":\"{path}\"", StringComparison.Ordinal));
        using var ok1 = JsonDocument.Parse(Line("/v1/completions"));
        var o = ok1.RootElement;
        Assert.Equal("POST", o.GetProperty("method").GetString());
        Assert.Equal("/v1/completions", o.GetProperty("path").GetString());
        Assert.Equal(200, o.GetProperty("status").GetInt32());
        Assert.Equal(5, o.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(12, o.GetProperty("completion_tokens").GetInt32());
        Assert.Equal("length", o.GetProperty("finish_reason").GetString());
        Assert.True(DateTimeOffset.TryParse(o.GetProperty("time").GetString(), CultureInfo.InvariantCulture, out _));
        using var bad1 = JsonDocument.Parse(Line("/v1/chat/completions"));
        Assert.Equal(400, bad1.RootElement.GetProperty("status").GetInt32());
        Assert.Equal("/v1/chat/completions", bad1.RootElement.GetProperty("path").GetString());
        using var list = JsonDocument.Parse(Line("/v1/models"));
        Assert.Equal("/v1/models", list.RootElement.GetProperty("path").GetString());
        Assert.False(list.RootElement.TryGetProperty("prompt_tokens", out _));
    }

    /// <summary>
    /// The log's lines once it has <paramref name="expected"/> of them, or after 5 s: the server writes a request's
    /// line after its response has been sent (with its duration), which the client may read first.
    /// </summary>
    private static async Task<string[]> LogLines(StringWriter log, int expected)
    {
        for (int wait = 0; ; wait += 25)
        {
            string text;
            lock (log) text = log.ToString();
            string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (lines.Length >= expected || wait >= 5000) return lines;
            await Task.Delay(25);
        }
    }

    [Fact]
    public async Task Text_log_keeps_its_line_per_request()
    {
        var log = new StringWriter();
        await StartStories(log: log);
        using (var ok = await Post("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 7, "temperature": 0}""")) Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        string line = Assert.Single(await LogLines(log, 1));
        Assert.Matches(@"^POST /v1/completions 200 prompt=5 completion=7 \d+\.\d\ds$", line);
    }

    [Fact]
    public async Task A_model_is_found_by_its_id_and_another_is_404()
    {
        await StartStories();
        using var res = await _http.GetAsync("/v1/models/stories260K");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Equal("stories260K", doc.RootElement.GetProperty("id").GetString());
        Assert.Equal("model", doc.RootElement.GetProperty("object").GetString());
        Assert.Equal(_engine.ContextLength, doc.RootElement.GetProperty("context_length").GetInt32());

        using var other = await _http.GetAsync("/v1/models/gpt-4o");
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        using var err = JsonDocument.Parse(await other.Content.ReadAsStringAsync());
        Assert.Equal("model_not_found", err.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_model_named_with_a_slash_is_found()
    {
        var (model, tok, _, _) = ScriptedModel.R1("a", "b");
        await Start(new ChatEngine(model, tok), "deepseek-ai/DeepSeek-R1");
        foreach (string path in new[] { "/v1/models/deepseek-ai/DeepSeek-R1", "/v1/models/deepseek-ai%2FDeepSeek-R1" })
        {
            using var res = await _http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
            Assert.Equal("deepseek-ai/DeepSeek-R1", doc.RootElement.GetProperty("id").GetString());
        }
    }

    private async Task<HttpResponseMessage> Preflight(string origin)
    {
        var req = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        req.Headers.Add("Origin", origin);
        req.Headers.Add("Access-Control-Request-Method", "POST");
        req.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        return await _http.SendAsync(req);
    }

    [Fact]
    public async Task Cors_answers_the_listed_origins_only_and_before_the_api_key()
    {
        var (model, tok, _, _) = ScriptedModel.R1("a", "b");
        await Start(new ChatEngine(model, tok), "r1", apiKey: "secret", ops: new ServerOperations { CorsOrigins = ["http://app.example"] });
        using var allowed = await Preflight("http://app.example");
        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal("http://app.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("POST", allowed.Headers.GetValues("Access-Control-Allow-Methods").Single());

        using var other = await Preflight("http://elsewhere.example");
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));

        var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "http://app.example");
        get.Headers.Add("Authorization", "Bearer secret");
        using var res = await _http.SendAsync(get);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("http://app.example", res.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task Without_cors_no_origin_is_allowed()
    {
        await StartStories();
        using var res = await Preflight("http://app.example");
        Assert.False(res.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task Shutdown_ends_an_open_stream_with_its_final_event()
    {
        await StartGated();
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"messages": [{"role": "user", "content": "think"}], "stream": true, "stream_options": {"include_usage": true}}""",
                Encoding.UTF8, "application/json"),
        };
        using var res = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var reader = new StreamReader(await res.Content.ReadAsStreamAsync());
        using var bound = new CancellationTokenSource(Bound);
        await _scripted!.Steps(3);   // the prompt and two more tokens
        var events = new List<string>();
        while (!events.Any(e => e.Contains("reasoning_content\":\"")))
            if (await reader.ReadLineAsync(bound.Token) is { Length: > 0 } line) events.Add(line);

        _app.Lifetime.StopApplication();   // what SIGTERM and Ctrl+C do (the host's console lifetime)...
        var stop = _app.StopAsync();       // ...and then the host stops
        _scripted.Gated = false;           // a pass waiting at the gate runs; the engine sees the request cancelled
        string rest = await reader.ReadToEndAsync(bound.Token);
        events.AddRange(rest.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        await stop.WaitAsync(Bound);

        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        var final = chunks.Last(c => c.GetProperty("choices").GetArrayLength() > 0);
        Assert.Equal("length", final.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        int completion = chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completion, 2, 3);   // cut short (the third pass may see the stop), far from the script's length
        Assert.True(_scripted.Script.Length > 100);
    }
}
