using System.Text.Json;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Tool calls in DeepSeek's templates, rendered token for token as Hugging Face renders them (references made by
/// @huggingface/jinja and @huggingface/tokenizers: tools/reference/render_chat_templates.mjs, reference-tools-*.jsonl),
/// and the model's calls read back from scripted outputs, malformed ones included.
/// </summary>
public class ToolCallTests
{
    private const string Bos = "<｜begin▁of▁sentence｜>";
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");

    private static string TemplateText(string name) => name switch
    {
        "r1" => JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.TokenizerDir(TokenizerFixtures.Qwen), "tokenizer_config.json"))).RootElement.GetProperty("chat_template").GetString()!,
        "v3" => JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.TokenizerDir(TokenizerFixtures.V3), "tokenizer_config.json"))).RootElement.GetProperty("chat_template").GetString()!,
        _ => File.ReadAllText(Path.Combine(Dir, name + ".jinja")),
    };

    private static ChatMessage Message(JsonElement m)
    {
        string content = m.GetProperty("content").ValueKind == JsonValueKind.Null ? "" : m.GetProperty("content").GetString()!;
        var msg = new ChatMessage(m.GetProperty("role").GetString()!, content);
        if (m.TryGetProperty("tool_calls", out var calls))
            msg = msg with
            {
                ToolCalls = calls.EnumerateArray().Select(c => new ToolCall("call_x", c.GetProperty("function").GetProperty("name").GetString()!,
                    c.GetProperty("function").GetProperty("arguments").GetString()!)).ToArray(),
            };
        return msg;
    }

    [Theory]
    [InlineData("r1", nameof(ToolCallFormat.FencedJson))]
    [InlineData("v3", nameof(ToolCallFormat.FencedJson))]
    [InlineData("v3-0324", nameof(ToolCallFormat.FencedJson))]
    [InlineData("r1-0528", nameof(ToolCallFormat.FencedJson))]
    [InlineData("v3.1", nameof(ToolCallFormat.NameSeparator))]
    public void Tool_calls_and_results_render_as_hugging_face_renders_them(string name, string formatName)
    {
        var format = Enum.Parse<ToolCallFormat>(formatName);   // by name: the type is internal, the test public
        IChatTemplate t = R1ChatTemplate.FromJinja(TemplateText(name), Bos)!;
        Assert.Equal(format, t.ToolCallFormat);
        int n = 0;
        foreach (string line in File.ReadLines(Path.Combine(Dir, $"reference-tools-{name}.jsonl")))
        {
            if (line.Length == 0) continue;
            var r = JsonDocument.Parse(line).RootElement;
            var messages = r.GetProperty("messages").EnumerateArray().Select(Message).ToArray();
            bool? thinking = r.GetProperty("thinking").ValueKind == JsonValueKind.Null ? null : r.GetProperty("thinking").GetBoolean();
            string text = t.Render(messages, r.GetProperty("add_generation_prompt").GetBoolean(), thinking);
            Assert.Equal(r.GetProperty("text").GetString(), text);
            Assert.Equal(r.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()), LaterChatTemplateTests.V31Tokenizer.Encode(text));
            n++;
        }
        Assert.True(n >= 10, $"{n} references");
    }

    [Fact]
    public void Tool_list_goes_into_the_last_system_message_or_a_new_first_one()
    {
        var tools = new[] { new ToolDefinition("get_weather", "Weather of a city.", """{"type":"object","properties":{"city":{"type":"string"}}}""") };
        var withSystem = ToolPrompt.Apply([new("system", "A"), new("user", "Hi"), new("system", "B")], tools, ToolCallFormat.NameSeparator);
        Assert.Equal(3, withSystem.Count);
        Assert.Equal("A", withSystem[0].Content);
        Assert.StartsWith("B\n\n## Tools\n", withSystem[2].Content);
        Assert.Contains("### get_weather\nDescription: Weather of a city.\n\nParameters: {\"type\":\"object\"", withSystem[2].Content);
        Assert.Contains("<｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>", withSystem[2].Content);
        var without = ToolPrompt.Apply([new("user", "Hi")], tools, ToolCallFormat.FencedJson);
        Assert.Equal("system", without[0].Role);
        Assert.Contains("function<｜tool▁sep｜>tool_call_name\n```json\ntool_call_arguments\n```", without[0].Content);
    }

    private static (string Text, List<ToolCall> Calls) ParseAll(ToolCallFormat format, IEnumerable<string> pieces, string[]? names = null)
    {
        var p = new ToolCallParser(format, names);
        var events = new List<ToolCallEvent>();
        foreach (var piece in pieces) p.Push(piece, events);
        p.Flush(events);
        return (string.Concat(events.Select(e => e.Text)), events.Where(e => e.Call != null).Select(e => e.Call!).ToList());
    }

    /// <summary>The text cut into single characters, so every marker arrives split at every place.</summary>
    private static IEnumerable<string> Chars(string s) => s.Select(c => c.ToString());

    [Fact]
    public void Fenced_calls_are_read_back_even_when_every_marker_arrives_split()
    {
        string output = "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n"
                      + "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Rome\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        foreach (var pieces in new[] { [output], Chars(output) })
        {
            var (text, calls) = ParseAll(ToolCallFormat.FencedJson, pieces);
            Assert.Equal("Let me check.", text);
            Assert.Equal(["get_weather", "get_weather"], calls.Select(c => c.Name));
            Assert.Equal(["{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}"], calls.Select(c => c.Arguments));
            Assert.All(calls, c => Assert.Matches("^call_[0-9a-f]{24}$", c.Id));
            Assert.NotEqual(calls[0].Id, calls[1].Id);
        }
    }

    [Fact]
    public void V31_calls_are_read_back()
    {
        string output = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"你好 🚀\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>open<｜tool▁sep｜>{\"id\": 3}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        var (text, calls) = ParseAll(ToolCallFormat.NameSeparator, Chars(output));
        Assert.Equal("", text);
        Assert.Equal(["search", "open"], calls.Select(c => c.Name));
        Assert.Equal("{\"q\": \"你好 🚀\"}", calls[0].Arguments);
    }

    [Theory]
    // arguments that are not JSON, not an object, a call that never ends, no separator, an unknown function
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": <｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>[1, 2]<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search {\"q\": \"x\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>delete_all<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜>")]
    [InlineData("<｜tool▁calls")]
    public void A_malformed_call_comes_out_as_text(string output)
    {
        foreach (var pieces in new[] { [output], Chars(output) })
        {
            var (text, calls) = ParseAll(ToolCallFormat.NameSeparator, pieces, ["search"]);
            Assert.Empty(calls);
            // everything but a well-formed block's closing marker is kept
            Assert.Equal(output.Replace("<｜tool▁calls▁end｜>", ""), text);
        }
    }

    [Fact]
    public void A_good_call_after_a_malformed_one_is_still_read()
    {
        string output = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{oops}\n```<｜tool▁call▁end｜>\n"
                      + "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"q\": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>after";
        var (text, calls) = ParseAll(ToolCallFormat.FencedJson, Chars(output));
        Assert.Equal("search", Assert.Single(calls).Name);
        Assert.Equal("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{oops}\n```<｜tool▁call▁end｜>after", text);
    }
}
