using System.Net;
using System.Text.Json;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tests.Tokenization;
using DeepSeekCpu.Tokenization;
using Microsoft.Extensions.AI;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// Tool calls end to end with scripted model outputs in DeepSeek-V3's format (its tokenizer and template): the HTTP
/// server's tool_calls (whole and streamed), tool results rendered back, and Microsoft.Extensions.AI's
/// UseFunctionInvocation() running a real function between two turns.
/// </summary>
public class ToolServingTests
{
    private const string CallParis = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>";
    private const string CallRome = "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Rome\"}\n```<｜tool▁call▁end｜>";
    private const string End = "<｜tool▁calls▁end｜>";
    private const string Tools = """[{"type":"function","function":{"name":"get_weather","description":"Weather of a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]""";

    private static (PromptScriptedModel Model, ChatEngine Engine) Engine(params string[] outputs) =>
        TestServer.Scripted(TokenizerFixtures.Json(TokenizerFixtures.V3), outputs);

    private static Task<(HttpStatusCode, JsonElement, string)> Post(ChatEngine engine, string json) => TestServer.Post(engine, "v3", json);

    [Fact]
    public async Task Server_returns_parallel_tool_calls_with_the_text_before_them()
    {
        var (model, engine) = Engine("Checking." + CallParis + CallRome + End);
        using var _ = engine;
        var (status, body, _) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Paris and Rome?"}],"tools":{{Tools}}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("Checking.", choice.GetProperty("message").GetProperty("content").GetString());
        var calls = choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray().ToList();
        Assert.Equal(["{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}"], calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString()));
        Assert.All(calls, c => Assert.Equal("get_weather", c.GetProperty("function").GetProperty("name").GetString()));
        Assert.All(calls, c => Assert.Equal("function", c.GetProperty("type").GetString()));
        // the model was shown the tool list in its system prompt
        string prompt = TokenizerFixtures.Json(TokenizerFixtures.V3).Decode(model.Prompts[0]);
        Assert.Contains("### get_weather\nDescription: Weather of a city.", prompt);
    }

    [Fact]
    public async Task Streamed_tool_calls_arrive_as_indexed_deltas_in_pieces_and_parallel_off_keeps_the_first()
    {
        var (_, engine) = Engine(CallParis + CallRome + End);
        using var __ = engine;
        var (status, _, text) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Paris and Rome?"}],"tools":{{Tools}},"stream":true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => JsonDocument.Parse(d).RootElement.GetProperty("choices")[0].Clone()).ToList();
        // OpenAI's shape: each call's first delta has its index, id, type and name, the next ones pieces of its arguments
        var calls = DsmlToolServingTests.JoinToolCalls(chunks);
        Assert.Equal(["{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}"], calls.Select(c => c.Arguments));
        Assert.All(calls, c => Assert.True(c.Deltas > 2, $"{c.Deltas} deltas"));
        Assert.Equal("tool_calls", chunks[^1].GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(chunks, c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.GetString()!.Contains("tool"));

        var (_, body, _) = await Post(engine, $$"""{"messages":[{"role":"user","content":"Paris and Rome?"}],"tools":{{Tools}},"parallel_tool_calls":false}""");
        Assert.Single(body.GetProperty("choices")[0].GetProperty("message").GetProperty("tool_calls").EnumerateArray());
    }

    [Fact]
    public async Task Tool_results_are_rendered_back_and_a_malformed_call_is_plain_content()
    {
        string broken = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": Paris}\n```<｜tool▁call▁end｜>" + End;
        var (model, engine) = Engine(broken);
        using var _ = engine;
        string messages = """[{"role":"user","content":"Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18 degrees"}]""";
        var (status, body, _) = await Post(engine, $$"""{"messages":{{messages}},"tools":{{Tools}}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(broken[..^End.Length], choice.GetProperty("message").GetProperty("content").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out var _));
        string prompt = TokenizerFixtures.Json(TokenizerFixtures.V3).Decode(model.Prompts[0]);
        // V3's template: the call, then the result in the tool-output markers
        Assert.EndsWith("<｜User｜>Paris?<｜Assistant｜>" + CallParis + "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18 degrees<｜tool▁output▁end｜><｜tool▁outputs▁end｜>", prompt);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name"}}]}""", "tools[0].function.name")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":{}}""", "tools")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"f"}}]}""", "tool_choice")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"g"}},"tools":[{"type":"function","function":{"name":"f"}}]}""", "tool_choice")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"parallel_tool_calls":1}""", "parallel_tool_calls")]
    [InlineData("""{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{}"}}]}]}""", "messages[0].tool_calls[0].function.name")]
    public async Task Bad_tool_fields_are_a_400_naming_the_field(string json, string param)
    {
        var (_, engine) = Engine("x");
        using var _ = engine;
        var (status, body, _) = await Post(engine, json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Required_and_named_tool_choice_start_the_answer_with_the_call()
    {
        // the model writes only the rest of a call that the prompt already began
        var (model, engine) = Engine("{\"city\": \"Oslo\"}\n```<｜tool▁call▁end｜>" + End);
        using var _ = engine;
        var (_, body, _) = await Post(engine, """{"messages":[{"role":"user","content":"Oslo?"}],"tools":""" + Tools + ""","tool_choice":{"type":"function","function":{"name":"get_weather"}}}""");
        var call = body.GetProperty("choices")[0].GetProperty("message").GetProperty("tool_calls")[0].GetProperty("function");
        Assert.Equal("get_weather", call.GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Oslo\"}", call.GetProperty("arguments").GetString());
        Assert.EndsWith("<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n",
            TokenizerFixtures.Json(TokenizerFixtures.V3).Decode(model.Prompts[0]));
    }

    [Fact]
    public async Task UseFunctionInvocation_calls_the_function_and_returns_the_models_answer()
    {
        var (model, engine) = Engine(CallParis + End, "It is 18 degrees in Paris.");
        using var _ = engine;
        var (asked, response) = await TestServer.AskWeather(engine, "v3");

        Assert.Equal(["Paris"], asked);
        Assert.Equal("It is 18 degrees in Paris.", response.Text);
        var call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("Paris", call.Arguments!["city"]!.ToString());
        Assert.Equal(2, model.Prompts.Count);
        // the second turn showed the model its call and the function's result, in the template's markers
        string second = TokenizerFixtures.Json(TokenizerFixtures.V3).Decode(model.Prompts[1]);
        Assert.EndsWith("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18 degrees<｜tool▁output▁end｜><｜tool▁outputs▁end｜>", second);
        Assert.Contains("get_weather\n```json\n{\"city\":\"Paris\"}\n```", second);
    }

    [Fact]
    public async Task Streaming_client_reports_the_call_as_function_call_content()
    {
        var (_, engine) = Engine(CallParis + End);
        using var _ = engine;
        IChatClient client = new DeepSeekChatClient(engine, "v3");
        var weather = AIFunctionFactory.Create((string city) => "18", "get_weather");
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync("Paris?", new ChatOptions { Tools = [weather] })) updates.Add(u);
        var call = Assert.Single(updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_weather", call.Name);
        Assert.Equal(ChatFinishReason.ToolCalls, updates[^1].FinishReason);
    }

    private sealed record Forecast(string City, double[] Temperatures);

    [Fact]
    public async Task Client_writes_call_arguments_and_results_as_System_Text_Json_does()
    {
        // the adapter serializes through a source-generated context (no reflection on these types); the reference is
        // System.Text.Json's reflection-based serializer with default options: same escaping, names and order
        var (model, engine) = Engine("ok");
        using var _ = engine;
        IChatClient client = new DeepSeekChatClient(engine, "v3");
        using var units = JsonDocument.Parse("""{"t": "c", "n": [1, 2.5]}""");
        var args = new Dictionary<string, object?> { ["city"] = "Zürich <&> \"q\"", ["days"] = 3, ["units"] = units.RootElement, ["ok"] = true, ["none"] = null, ["w"] = 0.25 };
        var result = new Forecast("Zürich", [18.5, 19]);
        await client.GetResponseAsync(
        [
            new(ChatRole.User, "Weather?"),
            new(ChatRole.Assistant, [new FunctionCallContent("c1", "get_weather", args)]),
            new(ChatRole.Tool, [new FunctionResultContent("c1", result)]),
        ], new ChatOptions { Tools = [AIFunctionFactory.Create((string city) => "", "get_weather")] });
        string prompt = TokenizerFixtures.Json(TokenizerFixtures.V3).Decode(model.Prompts[0]);
        Assert.Contains("get_weather\n```json\n" + JsonSerializer.Serialize<IDictionary<string, object?>>(args) + "\n```", prompt);
        Assert.Contains("<｜tool▁output▁begin｜>" + JsonSerializer.Serialize<object>(result) + "<｜tool▁output▁end｜>", prompt);
    }
}
