using System.Net;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tests.Tokenization;
using DeepSeekCpu.Tokenization;
using Microsoft.Extensions.AI;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// Tool calls of DeepSeek-V3.2 and V4 (DSML) end to end with scripted model outputs: the server's tool_calls whole and
/// streamed as OpenAI streams them (a call's id, type and name first, then its arguments in pieces that a client joins),
/// results and reasoning rendered back as DeepSeek's encoders write them, forced calls, and
/// Microsoft.Extensions.AI's UseFunctionInvocation() with FunctionCallContent.
/// </summary>
public class DsmlToolServingTests
{
    private const string Tools = """[{"type":"function","function":{"name":"get_weather","description":"Weather of a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]""";

    private static string Invoke(string city) =>
        $"<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">{city}</｜DSML｜parameter>\n</｜DSML｜invoke>";
    private static string Block(string name, params string[] invokes) => $"\n\n<｜DSML｜{name}>\n" + string.Join("\n", invokes) + $"\n</｜DSML｜{name}>";

    /// <summary>V3.2's (or V4's) tokenizer: DeepSeek-V3's vocabulary with "&lt;think&gt;", and DeepSeek's encoding.</summary>
    private sealed class EncodingTokenizer(ITokenizer inner, IChatTemplate encoding) : ITokenizer
    {
        public int VocabSize => inner.VocabSize;
        public int? BosId => inner.BosId;
        public int? EosId => inner.EosId;
        public IReadOnlySet<int> StopIds => inner.StopIds;
        public int[] Encode(string text, bool addSpecial = false) => inner.Encode(text, addSpecial);
        public string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);
        public ReadOnlySpan<byte> TokenBytes(int id) => inner.TokenBytes(id);
        public int? TokenToId(string token) => inner.TokenToId(token);
        public IChatTemplate? ChatTemplate => encoding;
    }

    private static (PromptScriptedModel Model, ChatEngine Engine, ITokenizer Tok) Engine(DeepSeekEncoding.Version version, params string[] outputs)
    {
        var tok = new EncodingTokenizer(LaterChatTemplateTests.V31Tokenizer, new DeepSeekEncoding(version));
        var (model, engine) = TestServer.Scripted(tok, outputs);
        return (model, engine, tok);
    }

    private static Task<(HttpStatusCode, JsonElement, string)> Post(ChatEngine engine, string json) => TestServer.Post(engine, "v32", json);

    /// <summary>The choices of a streamed response's chunks.</summary>
    internal static List<JsonElement> Chunks(string sse) =>
        sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => JsonDocument.Parse(d).RootElement).Where(r => r.GetProperty("choices").GetArrayLength() > 0)
            .Select(r => r.GetProperty("choices")[0].Clone()).ToList();

    /// <summary>
    /// The streamed tool_calls deltas joined as an OpenAI client joins them (by index: the first delta's id, type and
    /// name, every delta's arguments appended), after checking that only a call's first delta carries its id and name.
    /// </summary>
    internal static List<(string Id, string Name, string Arguments, int Deltas)> JoinToolCalls(List<JsonElement> chunks)
    {
        var calls = new List<(string Id, string Name, StringBuilder Args, int Deltas)>();
        foreach (var c in chunks)
        {
            if (!c.GetProperty("delta").TryGetProperty("tool_calls", out var tcs)) continue;
            foreach (var tc in tcs.EnumerateArray())
            {
                int index = tc.GetProperty("index").GetInt32();
                var f = tc.GetProperty("function");
                if (index == calls.Count)
                {
                    Assert.Equal("function", tc.GetProperty("type").GetString());
                    calls.Add((tc.GetProperty("id").GetString()!, f.GetProperty("name").GetString()!, new StringBuilder(f.GetProperty("arguments").GetString()), 1));
                    continue;
                }
                Assert.Equal(calls.Count - 1, index);   // pieces of the latest call, in order
                Assert.False(tc.TryGetProperty("id", out _));
                Assert.False(f.TryGetProperty("name", out _));
                var last = calls[^1];
                last.Args.Append(f.GetProperty("arguments").GetString());
                calls[^1] = last with { Deltas = last.Deltas + 1 };
            }
        }
        return [.. calls.Select(c => (c.Id, c.Name, c.Args.ToString(), c.Deltas))];
    }

    [Theory]
    [InlineData(nameof(DeepSeekEncoding.Version.V32), "function_calls")]
    [InlineData(nameof(DeepSeekEncoding.Version.V4), "tool_calls")]
    public async Task Server_returns_dsml_calls_with_the_text_before_them(string versionName, string block)
    {
        var version = Enum.Parse<DeepSeekEncoding.Version>(versionName);   // by name: the type is internal, the test public
        var (model, engine, tok) = Engine(version, "Checking." + Block(block, Invoke("Paris"), Invoke("Rome")));
        using var _ = engine;
        var (status, body, _) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Paris and Rome?"}],"tools":{{Tools}}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("Checking.", choice.GetProperty("message").GetProperty("content").GetString());
        var calls = choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray().ToList();
        Assert.Equal(["{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}"], calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString()));
        // the tool list went into an empty system message, as DeepSeek's encoder renders one with "tools"
        string prompt = tok.Decode(model.Prompts[0]);
        Assert.StartsWith("<｜begin▁of▁sentence｜>\n\n## Tools\n\n", prompt);
        Assert.Contains("{\"name\": \"get_weather\", \"description\": \"Weather of a city.\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}", prompt);
        Assert.EndsWith("<｜User｜>Paris and Rome?<｜Assistant｜></think>", prompt);
    }

    [Fact]
    public async Task Streamed_dsml_calls_come_as_openai_deltas_whose_arguments_join_to_the_call()
    {
        var (_, engine, _) = Engine(DeepSeekEncoding.Version.V32, "Checking." + Block("function_calls", Invoke("Paris"), Invoke("Rome")));
        using var __ = engine;
        var (status, _, text) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Paris and Rome?"}],"tools":{{Tools}},"stream":true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var chunks = Chunks(text);
        var calls = JoinToolCalls(chunks);
        Assert.Equal(["{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}"], calls.Select(c => c.Arguments));
        Assert.All(calls, c => Assert.Equal("get_weather", c.Name));
        Assert.All(calls, c => Assert.Matches("^call_[0-9a-f]{24}$", c.Id));
        Assert.All(calls, c => Assert.True(c.Deltas > 2, $"{c.Deltas} deltas"));   // arguments in pieces, not whole
        string content = string.Concat(chunks.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Checking.", content);
        Assert.Equal("tool_calls", chunks[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Reasoning_calls_and_results_go_back_as_v32_writes_them_in_thinking_mode()
    {
        var (model, engine, tok) = Engine(DeepSeekEncoding.Version.V32, "The tool says 18.</think>It is 18 degrees.");
        using var _ = engine;
        string messages = """[{"role":"user","content":"Paris?"},{"role":"assistant","content":"","reasoning_content":"I should ask the tool.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18 degrees"}]""";
        var (status, body, _) = await Post(engine, $$$"""{"messages":{{{messages}}},"tools":{{{Tools}}},"chat_template_kwargs":{"thinking":true}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var message = body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("It is 18 degrees.", message.GetProperty("content").GetString());
        Assert.Equal("The tool says 18.", message.GetProperty("reasoning_content").GetString());
        Assert.EndsWith("<｜User｜>Paris?<｜Assistant｜><think>I should ask the tool.</think>" + Block("function_calls", Invoke("Paris"))
            + "<｜end▁of▁sentence｜>\n\n<function_results>\n<result>18 degrees</result>\n</function_results>\n\n<think>", tok.Decode(model.Prompts[0]));
    }

    [Fact]
    public async Task A_named_tool_choice_starts_the_dsml_call_and_a_broken_one_is_content()
    {
        // the model writes only the rest of a call the prompt began
        var (model, engine, tok) = Engine(DeepSeekEncoding.Version.V32,
            "<｜DSML｜parameter name=\"city\" string=\"true\">Oslo</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>",
            Block("function_calls", "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"false\">Oslo</｜DSML｜parameter>\n</｜DSML｜invoke>"));
        using var _ = engine;
        var (_, body, _) = await Post(engine, """{"messages":[{"role":"user","content":"Oslo?"}],"tools":""" + Tools + ""","tool_choice":{"type":"function","function":{"name":"get_weather"}}}""");
        var call = body.GetProperty("choices")[0].GetProperty("message").GetProperty("tool_calls")[0].GetProperty("function");
        Assert.Equal("get_weather", call.GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Oslo\"}", call.GetProperty("arguments").GetString());
        Assert.EndsWith("<｜Assistant｜></think>\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n", tok.Decode(model.Prompts[0]));

        // "Oslo" is not JSON, so string="false" breaks the call: all of it is the answer's text
        var (_, broken, _) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Oslo?"}],"tools":{{Tools}}}""");
        var choice = broken.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Contains("string=\"false\">Oslo<", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out var __));
    }

    [Fact]
    public async Task UseFunctionInvocation_runs_a_dsml_call_and_shows_v4_the_result()
    {
        var (model, engine, tok) = Engine(DeepSeekEncoding.Version.V4, Block("tool_calls", Invoke("Paris")), "It is 18 degrees in Paris.");
        using var _ = engine;
        var (asked, response) = await TestServer.AskWeather(engine, "v4");

        Assert.Equal(["Paris"], asked);
        Assert.Equal("It is 18 degrees in Paris.", response.Text);
        var call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", call.Arguments!["city"]!.ToString());
        Assert.Equal(2, model.Prompts.Count);
        // V4: the call written back in DSML, the result in the next user turn, then the assistant marker
        string second = tok.Decode(model.Prompts[1]);
        Assert.EndsWith("<｜User｜>Weather in Paris?<｜Assistant｜></think>" + Block("tool_calls", Invoke("Paris"))
            + "<｜end▁of▁sentence｜><｜User｜><tool_result>18 degrees</tool_result><｜Assistant｜></think>", second);
    }
}
