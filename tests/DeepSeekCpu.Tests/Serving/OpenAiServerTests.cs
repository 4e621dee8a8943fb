using System.Net;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using DeepSeekCpu.Tokenization;
using Microsoft.AspNetCore.Builder;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// The OpenAI-compatible server over real HTTP on a loopback port. Text is checked against independent expectations:
/// the Python reference's greedy story for the demo model, and a scripted model whose reasoning and answer are known.
/// </summary>
public class OpenAiServerTests
{
    private sealed class Server : IAsyncDisposable
    {
        public required WebApplication App;
        public required HttpClient Http;
        public required ChatEngine Engine;
        public IDisposable? Owned;

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await App.StopAsync();
            await App.DisposeAsync();
            Engine.Dispose();
            Owned?.Dispose();
        }

        public async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json)
        {
            using var res = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
            string text = await res.Content.ReadAsStringAsync();
            return (res.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
        }

        /// <summary>The data payloads of a server-sent-event stream, "[DONE]" included.</summary>
        public async Task<List<string>> PostStream(string path, string json)
        {
            using var res = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            Assert.Equal("text/event-stream", res.Content.Headers.ContentType?.MediaType);
            string text = await res.Content.ReadAsStringAsync();
            return text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => { Assert.StartsWith("data: ", e); return e["data: ".Length..]; }).ToList();
        }
    }

    private static async Task<Server> Start(ChatEngine engine, string id, IDisposable? owned = null, string? apiKey = null)
    {
        var app = OpenAiServer.Build(engine, id, "http://127.0.0.1:0", apiKey: apiKey);
        await app.StartAsync();
        return new Server { App = app, Http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) }, Engine = engine, Owned = owned };
    }

    private static Task<Server> StartStories(int slots = 1)
    {
        var lm = LocalModel.Load(TestPaths.Stories260K);
        return Start(new ChatEngine(lm.Model, lm.Tokenizer, slots), "stories260K", lm);
    }

    /// <summary>The Python reference's greedy continuation of "Once upon a time", as text, up to its first stop token.</summary>
    internal static string ReferenceStory(int maxTokens)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tiny-stories260K-reference", "reference.json")));
        var ids = doc.RootElement.GetProperty("greedy_continuation_64").EnumerateArray().Select(x => x.GetInt32()).Take(maxTokens).ToArray();
        var tok = Llama2cTokenizer.Load(Path.Combine(Path.GetDirectoryName(TestPaths.Stories260K)!, "tok512.bin"), 512);
        int stop = Array.FindIndex(ids, tok.StopIds.Contains);
        return tok.Decode(stop < 0 ? ids : ids[..stop]);
    }

    [Fact]
    public async Task Completion_of_the_demo_model_is_the_reference_story()
    {
        await using var s = await StartStories();
        var (status, body) = await s.Post("/v1/completions", """{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(ReferenceStory(40), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(40, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()); // BOS + 4 (the reference's prompt_ids)
    }

    [Fact]
    public async Task Concurrent_requests_share_the_slots_and_each_gets_the_reference_story()
    {
        await using var s = await StartStories(slots: 2);
        var tasks = Enumerable.Range(0, 4).Select(_ =>
            s.Post("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}""")).ToArray();
        foreach (var (status, body) in await Task.WhenAll(tasks))
        {
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(ReferenceStory(30), body.GetProperty("choices")[0].GetProperty("text").GetString());
        }
    }

    [Fact]
    public async Task Chat_answer_and_reasoning_come_apart()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Count the r's: st-r-awbe-r-r-y, three.\n", "\n\nThere are **3** r's in \"strawberry\".");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        var (status, body) = await s.Post("/v1/chat/completions",
            """{"model": "r1-scripted", "messages": [{"role": "user", "content": "How many r's are in strawberry?"}]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(answer, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(reasoning, choice.GetProperty("message").GetProperty("reasoning_content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        int promptTokens = tok.Encode(tok.ChatTemplate!.Render([new ChatMessage("user", "How many r's are in strawberry?")])).Length;
        Assert.Equal(promptTokens, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(model.Script.Length, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(promptTokens + model.Script.Length, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_chat_sends_reasoning_and_answer_deltas_then_the_finish_reason_usage_and_done()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Two plus two.\n", "\n\n4");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        var events = await s.PostStream("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "2+2?"}], "stream": true, "stream_options": {"include_usage": true}}""");
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.Clone()).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var withChoices = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).ToList();
        string Joined(string field) => string.Concat(withChoices.Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty(field, out _)).Select(d => d.GetProperty(field).GetString()));
        Assert.Equal(answer, Joined("content"));
        Assert.Equal(reasoning, Joined("reasoning_content"));
        Assert.Equal("stop", withChoices[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var usage = chunks[^1];
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        Assert.Equal(model.Script.Length, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_strings_cut_the_answer_even_across_tokens()
    {
        var (model, tok, _, _) = ScriptedModel.R1("Think.\n", "\n\nThe answer is forty-two, surely.");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        var (status, body) = await s.Post("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "?"}], "stop": ["forty-two"]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("\n\nThe answer is ", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var events = await s.PostStream("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "?"}], "stop": "forty-two", "stream": true}""");
        string streamed = string.Concat(events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString()));
        Assert.Equal("\n\nThe answer is ", streamed);
    }

    [Fact]
    public async Task A_conversations_next_turn_reuses_the_cached_prefix()
    {
        var (model, tok, reasoning, answer) = ScriptedModel.R1("Hmm.\n", "\n\nHello!");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        await s.Post("/v1/chat/completions", """{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]}""");
        int fedFirst = model.TokensFed;
        string second = """{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]}""";
        var (status, _) = await s.Post("/v1/chat/completions", second);
        Assert.Equal(HttpStatusCode.OK, status);
        int[] prompt1 = tok.Encode(tok.ChatTemplate!.Render([new("system", "You are terse."), new("user", "Hi")]));
        int[] prompt2 = tok.Encode(tok.ChatTemplate!.Render([new("system", "You are terse."), new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye")]));
        // the slot holds the first prompt and the generated tokens fed back (all but the last, EOS)
        int[] cached = [.. prompt1, .. model.Script[..^1]];
        int common = 0;
        while (common < cached.Length && common < prompt2.Length - 1 && cached[common] == prompt2[common]) common++;
        Assert.True(common >= prompt1.Length - 3, $"the two turns share only {common} tokens");   // up to the first turn's generation prompt
        int fedSecond = model.TokensFed - fedFirst - (model.Script.Length - 1);   // less the generated tokens fed back
        Assert.Equal(prompt2.Length - common, fedSecond);
    }

    [Theory]
    [InlineData("{not json", 400, null, "not valid JSON")]
    [InlineData("[1, 2]", 400, null, "JSON object")]
    [InlineData("""{"messages": []}""", 400, "messages", "non-empty array")]
    [InlineData("""{"prompt": "x"}""", 400, "messages", "messages is required")]
    [InlineData("""{"messages": [{"role": "wizard", "content": "x"}]}""", 400, "messages[0].role", "must be one of")]
    [InlineData("""{"messages": [{"role": "user", "content": 5}]}""", 400, "messages[0].content", "string or an array")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "temperature": -1}""", 400, "temperature", "between 0 and 2")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}""", 400, "temperature", "must be a number")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}""", 400, "max_tokens", "at least 1")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}""", 400, "top_p", "(0, 1]")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "n": 9}""", 400, "n", "between 1 and 8")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "stop": [1]}""", 400, "stop", "up to 4 strings")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 2.5}""", 400, "frequency_penalty", "between -2 and 2")]
    [InlineData("""{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}""", 404, "model", "does not exist here")]
    public async Task Bad_requests_get_an_openai_error_naming_the_field_and_the_server_keeps_serving(string json, int status, string? param, string message)
    {
        var (model, tok, _, answer) = ScriptedModel.R1("R.\n", "\n\nA.");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        var (code, body) = await s.Post("/v1/chat/completions", json);
        Assert.Equal(status, (int)code);
        var error = body.GetProperty("error");
        Assert.Contains(message, error.GetProperty("message").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("type").GetString()));
        // the next request is answered normally
        var (ok, good) = await s.Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}]}""");
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal(answer, good.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_refused_with_context_length_exceeded()
    {
        var (model, tok, _, _) = ScriptedModel.R1("R.\n", "\n\nA.");
        await using var s = await Start(new ChatEngine(model, tok, slots: 1, contextLength: 32), "r1-scripted");
        string longText = string.Join(" ", Enumerable.Repeat("strawberry", 40));
        var (code, body) = await s.Post("/v1/chat/completions", $$"""{"messages": [{"role": "user", "content": "{{longText}}"}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, code);
        Assert.Equal("context_length_exceeded", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("32", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Non_ascii_text_is_sent_as_utf8_not_escaped()
    {
        var (model, tok, _, answer) = ScriptedModel.R1("想一想。\n", "\n\n草莓里有三个 r。");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        using var res = await s.Http.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages": [{"role": "user", "content": "strawberry 里有几个 r?"}]}""", Encoding.UTF8, "application/json"));
        string raw = await res.Content.ReadAsStringAsync();
        Assert.Contains("草莓里有三个 r。", raw);
        Assert.Contains("想一想。", raw);
        Assert.Equal(answer, JsonDocument.Parse(raw).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task With_an_api_key_requests_need_the_bearer_token()
    {
        var (model, tok, _, answer) = ScriptedModel.R1("R.\n", "\n\nA.");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted", apiKey: "sk-local-123");
        var (code, body) = await s.Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}]}""");
        Assert.Equal(HttpStatusCode.Unauthorized, code);
        Assert.Equal("invalid_api_key", body.GetProperty("error").GetProperty("code").GetString());
        s.Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await s.Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}]}""")).Status);
        s.Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-local-123");
        var (ok, good) = await s.Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}]}""");
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal(answer, good.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        s.Http.DefaultRequestHeaders.Authorization = null;
        Assert.Equal("ok", JsonDocument.Parse(await s.Http.GetStringAsync("/health")).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Models_health_and_unknown_routes()
    {
        var (model, tok, _, _) = ScriptedModel.R1("R.\n", "\n\nA.");
        await using var s = await Start(new ChatEngine(model, tok), "r1-scripted");
        var models = JsonDocument.Parse(await s.Http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        Assert.Equal("r1-scripted", models.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal("ok", JsonDocument.Parse(await s.Http.GetStringAsync("/health")).RootElement.GetProperty("status").GetString());
        using var res = await s.Http.GetAsync("/v2/nothing");
        Assert.Equal(HttpStatusCode.NotFound, res.StatusCode);
        Assert.Contains("no route", JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString());
    }
}
