using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using DeepSeekCpu.Tests.Serving;
using DeepSeekCpu.Tokenization;
using Microsoft.AspNetCore.Builder;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// Requests built as an attacker would (issue 11), over real HTTP on loopback: every client error is a 4xx with
/// OpenAI's error object (a 500 would mean a bug of ours), the limits of <see cref="ServerLimits"/> hold, and a full
/// queue answers 503 with Retry-After. All waits are bounded.
/// </summary>
public sealed class ServerHardeningTests : IAsyncDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    /// <summary>The tokenizer of the scripted model, counting its Encode calls.</summary>
    private sealed class CountingTokenizer(ITokenizer inner) : ITokenizer
    {
        public int Encodes;
        public int VocabSize => inner.VocabSize;
        public int? BosId => inner.BosId;
        public int? EosId => inner.EosId;
        public IReadOnlySet<int> StopIds => inner.StopIds;
        public int[] Encode(string text, bool addSpecial = false) { Interlocked.Increment(ref Encodes); return inner.Encode(text, addSpecial); }
        public string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);
        public ReadOnlySpan<byte> TokenBytes(int id) => inner.TokenBytes(id);
        public int? TokenToId(string token) => inner.TokenToId(token);
        public IChatTemplate? ChatTemplate => inner.ChatTemplate;
    }

    private WebApplication _app = null!;
    private ChatEngine _engine = null!;
    private ScriptedModel _model = null!;
    private CountingTokenizer _tok = null!;
    private HttpClient _http = null!;
    private string _answer = "";

    private async Task Start(ServerLimits limits, int slots = 1)
    {
        var (model, tok, _, answer) = ScriptedModel.R1("Thinking.\n", "\n\nDone.");
        (_model, _tok, _answer) = (model, new CountingTokenizer(tok), answer);
        _engine = new ChatEngine(model, _tok, slots);
        _app = OpenAiServer.Build(_engine, "m", "http://127.0.0.1:0", limits: limits);
        await _app.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(_app.Urls.First()), Timeout = Bound };
    }

    public async ValueTask DisposeAsync()
    {
        if (_model != null) _model.Gated = false;
        _http?.Dispose();
        if (_app != null) { await _app.StopAsync(); await _app.DisposeAsync(); }
        _engine?.Dispose();
    }

    private static void AssertOpenAiError(string body, string? mustSay = null)
    {
        using var doc = JsonDocument.Parse(body);
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        if (mustSay != null) Assert.Contains(mustSay, error.GetProperty("message").GetString());
    }

    private async Task<(HttpStatusCode, string)> PostBytes(byte[] body, string path = "/v1/chat/completions")
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var res = await _http.PostAsync(path, content);
        return (res.StatusCode, await res.Content.ReadAsStringAsync());
    }

    private Task<(HttpStatusCode, string)> Post(string json, string path = "/v1/chat/completions") => PostBytes(Encoding.UTF8.GetBytes(json), path);

    /// <summary>Raw bytes over a socket; returns the response's status line and body text (after the server closes or answers).</summary>
    private async Task<string> Raw(byte[] request, bool closeSend, TimeSpan? pauseBeforeClose = null)
    {
        var uri = new Uri(_app.Urls.First());
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(request);
        if (pauseBeforeClose is { } p) await Task.Delay(p);
        if (closeSend) client.Client.Shutdown(SocketShutdown.Send);
        var buffer = new byte[65536];
        var received = new MemoryStream();
        using var cts = new CancellationTokenSource(Bound);
        try
        {
            while (true)
            {
                int n = await stream.ReadAsync(buffer, cts.Token);
                if (n == 0) break;
                received.Write(buffer, 0, n);
                string soFar = Encoding.UTF8.GetString(received.ToArray());
                if (soFar.Contains("\r\n\r\n") && soFar.TrimEnd().EndsWith('}')) break;   // one JSON error body is enough
            }
        }
        catch (IOException) { }   // the server may reset the connection after answering
        return Encoding.UTF8.GetString(received.ToArray());
    }

    [Fact]
    public async Task Ordinary_request_is_answered()
    {
        // positive control for the scripted server
        await Start(ServerLimits.Default);
        var (status, body) = await Post("""{"messages": [{"role": "user", "content": "hi"}]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("Done.", body);
    }

    [Fact]
    public async Task Invalid_utf8_in_a_string_is_400()
    {
        await Start(ServerLimits.Default);
        byte[] body = [.. """{"messages": [{"role": "user", "content": "a"""u8, 0xFF, 0xFE, 0xC3, .. """b"}]}"""u8];
        var (status, text) = await PostBytes(body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text);
    }

    [Theory]
    [InlineData("""{"messages": [{"role": "user", "content": "\ud800"}]}""")]                 // escaped lone surrogate
    [InlineData("""{"messages": [{"role": "user", "content": "x\udc00y"}]}""")]
    [InlineData("""{"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]}""")]  // type as a number
    [InlineData("""{"messages": [{"role": "user", "content": [{"type": null}]}]}""")]
    [InlineData("""{"model": "\ud800", "messages": [{"role": "user", "content": "x"}]}""")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "stop": ["\udfff"]}""")]
    public async Task Wrong_json_values_are_400(string json)
    {
        await Start(ServerLimits.Default);
        var (status, text) = await Post(json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text);
    }

    [Fact]
    public async Task Body_over_the_limit_is_413()
    {
        await Start(ServerLimits.Default with { MaxBodyBytes = 2048 });
        string json = $$"""{"messages": [{"role": "user", "content": "{{new string('x', 4000)}}"}]}""";
        var (status, text) = await Post(json);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        AssertOpenAiError(text);
        Assert.Equal(0, _tok.Encodes);
    }

    [Fact]
    public async Task Body_that_arrives_too_slowly_is_408()
    {
        await Start(ServerLimits.Default with { MinBodyBytesPerSecond = 100, BodyGracePeriod = TimeSpan.FromSeconds(2) });
        // announces 1000 bytes, sends 10, then nothing
        string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"messages";
        string response = await Raw(Encoding.ASCII.GetBytes(head), closeSend: false);
        Assert.StartsWith("HTTP/1.1 408", response);
        Assert.Contains("{\"error\":{\"message\":", response);   // OpenAI's error object (the body may come chunked)
    }

    [Fact]
    public async Task Bad_chunk_size_is_400()
    {
        await Start(ServerLimits.Default);
        string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
        string response = await Raw(Encoding.ASCII.GetBytes(req), closeSend: false);
        Assert.StartsWith("HTTP/1.1 400", response);
    }

    [Fact]
    public async Task Content_length_longer_than_the_body_is_a_client_error()
    {
        await Start(ServerLimits.Default);
        string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"messages\": []}";
        string response = await Raw(Encoding.ASCII.GetBytes(req), closeSend: true, pauseBeforeClose: TimeSpan.FromMilliseconds(100));
        // the client has half-closed: the server answers 400 (or just closes), never 500
        Assert.DoesNotContain("HTTP/1.1 500", response);
        if (response.Length > 0) Assert.StartsWith("HTTP/1.1 400", response);
    }

    [Fact]
    public async Task Prompt_over_the_character_limit_is_refused_before_tokenization()
    {
        await Start(ServerLimits.Default with { MaxPromptChars = 1000 });
        var (status, text) = await Post($$"""{"messages": [{"role": "user", "content": "{{new string('x', 600)}}"}, {"role": "user", "content": "{{new string('y', 600)}}"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "1200 characters");
        (status, text) = await Post($$"""{"prompt": "{{new string('x', 1001)}}"}""", "/v1/completions");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "1001 characters");
        Assert.Equal(0, _tok.Encodes);
    }

    [Fact]
    public async Task Default_character_limit_is_32_per_context_token()
    {
        await Start(ServerLimits.Default);
        Assert.Equal(4096, _engine.ContextLength);
        var (status, text) = await Post($$"""{"prompt": "{{new string('a', 32 * 4096 + 1)}}"}""", "/v1/completions");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "at most 131072");
        Assert.Equal(0, _tok.Encodes);
    }

    [Fact]
    public async Task Prompt_over_the_token_limit_is_400()
    {
        await Start(ServerLimits.Default with { MaxPromptTokens = 5 });
        var (status, text) = await Post("""{"messages": [{"role": "user", "content": "one two three four five six seven"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "at most 5");
    }

    [Fact]
    public async Task Too_many_messages_and_stop_strings_are_400()
    {
        await Start(ServerLimits.Default with { MaxMessages = 3, MaxStopChars = 10 });
        string msgs = string.Join(", ", Enumerable.Repeat("""{"role": "user", "content": "x"}""", 4));
        var (status, text) = await Post($$"""{"messages": [{{msgs}}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "at most 3");
        (status, text) = await Post("""{"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        (status, text) = await Post("""{"messages": [{"role": "user", "content": "x"}], "stop": ["abcdefghijk"]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(text, "at most 10 characters");
        Assert.Equal(0, _tok.Encodes);
    }

    [Fact]
    public async Task Full_queue_answers_503_with_retry_after()
    {
        await Start(ServerLimits.Default with { Queue = 1 });
        _model.Gated = true;
        string json = """{"messages": [{"role": "user", "content": "hi"}]}""";
        var running = Post(json);                          // takes the one slot
        await _model.Steps(1);                             // its prompt pass has started: it holds the slot
        var waiting = Post(json);                          // the one place in line
        await WaitUntil(() => _tok.Encodes >= 2);
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var refused = await _http.PostAsync("/v1/chat/completions", content);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero, "503 without Retry-After");
        AssertOpenAiError(await refused.Content.ReadAsStringAsync(), "busy");
        _model.Gated = false;
        var (s1, b1) = await running.WaitAsync(Bound);
        var (s2, b2) = await waiting.WaitAsync(Bound);
        Assert.Equal(HttpStatusCode.OK, s1);
        Assert.Equal(HttpStatusCode.OK, s2);
        // with the line empty again, a request is served
        var (s3, _) = await Post(json);
        Assert.Equal(HttpStatusCode.OK, s3);
    }

    [Fact]
    public async Task Request_timeout_is_503_and_frees_the_slot()
    {
        await Start(ServerLimits.Default with { RequestTimeout = TimeSpan.FromSeconds(1) });
        _model.Gated = true;                               // the model's second pass outlasts the timeout
        var pending = Post("""{"messages": [{"role": "user", "content": "hi"}]}""");
        await _model.Steps(1);
        await Task.Delay(1500);
        _model.Gated = false;                              // the step ends; the scheduler sees the request was cancelled
        var (status, text) = await pending.WaitAsync(Bound);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        AssertOpenAiError(text, "timeout");
        // the slot is free again: the engine serves the next request (directly, so that this one second timeout
        // cannot cut it short on a busy test machine)
        var prompt = _engine.RenderChat([new ChatMessage("user", "hi")], out bool reasoning);
        var result = await _engine.CompleteAsync(prompt, reasoning, new GenerationRequest()).WaitAsync(Bound);
        Assert.Equal(_answer, result.Content);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var end = DateTime.UtcNow + Bound;
        while (!condition())
        {
            if (DateTime.UtcNow > end) throw new TimeoutException("condition not reached");
            await Task.Delay(10);
        }
    }
}
