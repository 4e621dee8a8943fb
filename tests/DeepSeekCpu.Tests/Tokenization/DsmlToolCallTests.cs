using System.Text.Json;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Tool use in DeepSeek-V3.2's and V4's encodings (DSML), against DeepSeek's own encoders run in Python
/// (tools/reference/render_deepseek_tool_encodings.py): tools in the system prompt, calls, results, reasoning, both
/// thinking modes and drop_thinking rendered character for character (reference-tools-dsv32/dsv4.jsonl), and model
/// outputs read back as DeepSeek's decoder reads them (parse-dsv32/dsv4.jsonl), whole and character by character.
/// </summary>
public class DsmlToolCallTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");
    private static readonly string[] Names = ["get_weather", "search", "now"];

    /// <summary>A message of the reference files (OpenAI shape) as the engine's message.</summary>
    internal static ChatMessage Message(JsonElement m)
    {
        string Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        var msg = new ChatMessage(m.GetProperty("role").GetString()!, Str(m, "content"));
        if (m.TryGetProperty("reasoning_content", out var r)) msg = msg with { Reasoning = r.GetString() };
        if (m.TryGetProperty("tool_call_id", out var id)) msg = msg with { ToolCallId = id.GetString() };
        if (m.TryGetProperty("tool_calls", out var calls))
            msg = msg with
            {
                ToolCalls = calls.EnumerateArray().Select(c => new ToolCall(c.GetProperty("id").GetString()!, Str(c.GetProperty("function"), "name"),
                    Str(c.GetProperty("function"), "arguments"))).ToArray(),
            };
        if (m.TryGetProperty("tools", out var tools))
            msg = msg with
            {
                Tools = tools.EnumerateArray().Select(t => t.GetProperty("function")).Select(f => new ToolDefinition(f.GetProperty("name").GetString()!,
                    f.TryGetProperty("description", out var d) ? d.GetString() : null, f.GetProperty("parameters").GetRawText())).ToArray(),
            };
        return msg;
    }

    [Theory]
    [InlineData("dsv32", nameof(DeepSeekEncoding.Version.V32), nameof(ToolCallFormat.DsmlFunctionCalls))]
    [InlineData("dsv4", nameof(DeepSeekEncoding.Version.V4), nameof(ToolCallFormat.DsmlToolCalls))]
    public void Tools_calls_results_and_reasoning_render_as_deepseeks_encoder(string name, string versionName, string formatName)
    {
        var version = Enum.Parse<DeepSeekEncoding.Version>(versionName);   // by name: the type is internal, the test public
        var format = Enum.Parse<ToolCallFormat>(formatName);   // by name: the type is internal, the test public
        int seen = 0, refused = 0;
        foreach (string line in File.ReadLines(Path.Combine(Dir, $"reference-tools-{name}.jsonl")))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            var messages = r.GetProperty("messages").EnumerateArray().Select(Message).ToArray();
            bool thinking = r.GetProperty("thinking_mode").GetString() == "thinking";
            IChatTemplate t = new DeepSeekEncoding(version, r.GetProperty("drop_thinking").GetBoolean());
            Assert.Equal(format, t.ToolCallFormat);
            if (r.TryGetProperty("error", out _)) { Assert.Throws<ArgumentException>(() => t.Render(messages, true, thinking)); refused++; }
            else Assert.Equal(r.GetProperty("text").GetString(), t.Render(messages, true, thinking));
            seen++;
        }
        Assert.Equal(44, seen);
        Assert.Equal(name == "dsv32" ? 4 : 0, refused);
    }

    [Theory]
    [InlineData(nameof(DeepSeekEncoding.Version.V32), nameof(ToolCallFormat.DsmlFunctionCalls))]
    [InlineData(nameof(DeepSeekEncoding.Version.V4), nameof(ToolCallFormat.DsmlToolCalls))]
    public void Tools_offered_without_a_system_message_render_as_an_empty_system_message_with_them(string versionName, string formatName)
    {
        var version = Enum.Parse<DeepSeekEncoding.Version>(versionName);   // by name: the type is internal, the test public
        var format = Enum.Parse<ToolCallFormat>(formatName);   // by name: the type is internal, the test public
        // the second reference conversation: [system "" with tools, user]; ToolPrompt.Apply makes it from the user turn
        string line = File.ReadLines(Path.Combine(Dir, $"reference-tools-{(version == DeepSeekEncoding.Version.V32 ? "dsv32" : "dsv4")}.jsonl")).Skip(4).First();
        var r = JsonDocument.Parse(line).RootElement;
        var reference = r.GetProperty("messages").EnumerateArray().Select(Message).ToArray();
        var applied = ToolPrompt.Apply([reference[1]], reference[0].Tools!, format);
        Assert.Equal(r.GetProperty("text").GetString(), new DeepSeekEncoding(version).Render(applied, true, false));
    }

    /// <summary>The answer part of a completion (after the reasoning, without the end-of-sentence token), read back.</summary>
    internal static (string Text, List<ToolCall> Calls, List<ToolCallFragment> Fragments) ParseAll(ToolCallFormat format, IEnumerable<string> pieces,
        string[]? names = null)
    {
        var p = new ToolCallParser(format, names ?? Names);
        var events = new List<ToolCallEvent>();
        foreach (var piece in pieces) p.Push(piece, events);
        p.Flush(events);
        return (string.Concat(events.Select(e => e.Text)), events.Where(e => e.Call != null).Select(e => e.Call!).ToList(),
            events.Where(e => e.Fragment != null).Select(e => e.Fragment!.Value).ToList());
    }

    internal static IEnumerable<string> Chars(string s) => s.Select(c => c.ToString());

    /// <summary>Each call's fragments: a start with its id and name, then pieces that join to its arguments.</summary>
    internal static void AssertFragmentsMakeTheCalls(List<ToolCallFragment> fragments, List<ToolCall> calls)
    {
        for (int i = 0; i < calls.Count; i++)
        {
            var mine = fragments.Where(f => f.Index == i).ToList();
            Assert.Equal(ToolCallFragmentKind.Start, mine[0].Kind);
            Assert.Equal(calls[i].Id, mine[0].Id);
            Assert.Equal(calls[i].Name, mine[0].Name);
            Assert.All(mine.Skip(1), f => Assert.Equal(ToolCallFragmentKind.Arguments, f.Kind));
            Assert.Equal(calls[i].Arguments, string.Concat(mine.Skip(1).Select(f => f.Arguments)));
        }
    }

    [Theory]
    [InlineData("dsv32", nameof(ToolCallFormat.DsmlFunctionCalls))]
    [InlineData("dsv4", nameof(ToolCallFormat.DsmlToolCalls))]
    public void Model_outputs_are_read_as_deepseeks_decoder_reads_them(string name, string formatName)
    {
        var format = Enum.Parse<ToolCallFormat>(formatName);   // by name: the type is internal, the test public
        const string Eos = "<｜end▁of▁sentence｜>";
        int rows = 0;
        foreach (string line in File.ReadLines(Path.Combine(Dir, $"parse-{name}.jsonl")))
        {
            if (line.Length == 0) continue;
            var r = JsonDocument.Parse(line).RootElement;
            string completion = r.GetProperty("completion").GetString()!;
            Assert.EndsWith(Eos, completion);
            string answer = completion[..^Eos.Length];
            // the engine splits the reasoning off before the parser sees the answer
            if (r.GetProperty("thinking_mode").GetString() == "thinking") answer = answer[(answer.IndexOf("</think>", StringComparison.Ordinal) + 8)..];
            foreach (var pieces in new[] { [answer], Chars(answer) })
            {
                var (text, calls, fragments) = ParseAll(format, pieces);
                if (r.TryGetProperty("error", out _))
                {
                    // refused by DeepSeek's strict decoder: here no call, and every character kept as text
                    Assert.Empty(calls);
                    Assert.Equal(answer, text);
                    continue;
                }
                Assert.Equal(r.GetProperty("content").GetString(), text);
                var expected = r.GetProperty("tool_calls").EnumerateArray().ToList();
                Assert.Equal(expected.Select(c => c.GetProperty("name").GetString()), calls.Select(c => c.Name));
                Assert.Equal(expected.Select(c => c.GetProperty("arguments").GetString()), calls.Select(c => c.Arguments));
                Assert.All(calls, c => Assert.Matches("^call_[0-9a-f]{24}$", c.Id));
                AssertFragmentsMakeTheCalls(fragments, calls);
            }
            rows++;
        }
        Assert.Equal(9, rows);
    }

    private const string Open = "\n\n<｜DSML｜function_calls>\n";
    private const string Close = "\n</｜DSML｜function_calls>";
    private const string Paris = "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>";

    [Theory]
    // an unknown tool, a value that is not JSON, a broken string attribute, no closing quote, stray text in the block,
    // an unfinished block, an unfinished parameter
    [InlineData(Open + "<｜DSML｜invoke name=\"delete_all\">\n</｜DSML｜invoke>" + Close)]
    [InlineData(Open + "<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"num_results\" string=\"false\">five</｜DSML｜parameter>\n</｜DSML｜invoke>" + Close)]
    [InlineData(Open + "<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"query\" string=yes>x</｜DSML｜parameter>\n</｜DSML｜invoke>" + Close)]
    [InlineData(Open + "<｜DSML｜invoke name=\"search>\n</｜DSML｜invoke>" + Close)]
    [InlineData(Open + "I will now call.\n" + Paris + Close)]
    [InlineData("Sure." + Open + "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Paris</｜DSML｜parameter>\n")]
    [InlineData(Open + "<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"query\" string=\"true\">wea")]
    [InlineData("<｜DSML｜function_calls")]
    public void A_malformed_dsml_call_comes_out_as_text(string output)
    {
        foreach (var pieces in new[] { [output], Chars(output) })
        {
            var (text, calls, fragments) = ParseAll(ToolCallFormat.DsmlFunctionCalls, pieces);
            Assert.Empty(calls);
            Assert.Equal(output, text);
            // a call that had started is abandoned, never left open
            foreach (var started in fragments.Where(f => f.Kind == ToolCallFragmentKind.Start))
                Assert.Contains(fragments, f => f.Index == started.Index && f.Kind == ToolCallFragmentKind.Abandoned);
        }
    }

    [Fact]
    public void A_good_call_before_a_broken_one_is_read_and_the_rest_is_text()
    {
        string broken = "<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"maybe\">Rome</｜DSML｜parameter>\n</｜DSML｜invoke>" + Close;
        string output = "Both." + Open + Paris + "\n" + broken;
        var (text, calls, fragments) = ParseAll(ToolCallFormat.DsmlFunctionCalls, Chars(output));
        Assert.Equal("{\"location\": \"Paris\"}", Assert.Single(calls).Arguments);
        Assert.Equal("Both.\n" + broken, text);   // the line end between the calls goes with the broken one
        Assert.Contains(fragments, f => f.Index == 1 && f.Kind == ToolCallFragmentKind.Abandoned);
    }

    [Fact]
    public void V4_reads_its_tool_calls_block_and_not_v32s()
    {
        string v4 = "\n\n<｜DSML｜tool_calls>\n" + Paris + "\n</｜DSML｜tool_calls>";
        Assert.Equal("get_weather", Assert.Single(ParseAll(ToolCallFormat.DsmlToolCalls, Chars(v4)).Calls).Name);
        var (text, calls, _) = ParseAll(ToolCallFormat.DsmlToolCalls, [Open + Paris + Close]);
        Assert.Empty(calls);
        Assert.Equal(Open + Paris + Close, text);
    }

    [Fact]
    public void Dsml_arguments_stream_value_by_value_and_strings_as_they_arrive()
    {
        string output = Open + "<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"query\" string=\"true\">a \"b\"\nc</｜DSML｜parameter>\n"
                      + "<｜DSML｜parameter name=\"num_results\" string=\"false\">12</｜DSML｜parameter>\n</｜DSML｜invoke>" + Close;
        var (text, calls, fragments) = ParseAll(ToolCallFormat.DsmlFunctionCalls, Chars(output));
        Assert.Equal("", text);
        var call = Assert.Single(calls);
        Assert.Equal("{\"query\": \"a \\\"b\\\"\\nc\", \"num_results\": 12}", call.Arguments);
        AssertFragmentsMakeTheCalls(fragments, calls);
        // the string's characters came one by one (escaped), the number whole
        Assert.Contains(fragments, f => f.Arguments == "\\\"");
        Assert.Contains(fragments, f => f.Arguments == "12");
        Assert.True(fragments.Count > 8, $"{fragments.Count} fragments");
    }

    [Theory]
    [InlineData(1000.0, "1000.0")]
    [InlineData(2.5e-05, "2.5e-05")]
    [InlineData(1e16, "1e+16")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(123456789012345680.0, "1.2345678901234568e+17")]
    [InlineData(-0.5, "-0.5")]
    [InlineData(0.1, "0.1")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(9999999999999998.0, "9999999999999998.0")]
    public void Floats_print_as_pythons_repr(double value, string python)
    {
        // values and their repr() as Python 3.11 prints them
        Assert.Equal(python, PythonJson.FloatRepr(value));
    }
}

/// <summary>Which encoding (and so which tool-call format) a model gets when its files carry no chat template.</summary>
public class DsmlEncodingSelectionTests
{
    [Fact]
    public void A_deepseek32_gguf_without_a_template_gets_v32s_encoding_and_its_dsml_calls()
    {
        // llama.cpp writes V3.2 as general.architecture "deepseek32"; DeepSeek ships no Jinja template for it
        var md = DeepSeekCpu.Tests.Tokenization.GgufMetadata.FromTokenizerJson(TokenizerFixtures.TokenizerDir(TokenizerFixtures.V3), "deepseek-v3");
        md.Remove("tokenizer.chat_template");
        md["general.architecture"] = "deepseek32";
        var tok = DeepSeekCpu.Tokenizers.TokenizerLoader.FromGgufMetadata(md, "v32.gguf");
        Assert.Equal(DeepSeekEncoding.Version.V32, Assert.IsType<DeepSeekEncoding>(tok.ChatTemplate).EncodingVersion);
        Assert.Equal(ToolCallFormat.DsmlFunctionCalls, tok.ChatTemplate!.ToolCallFormat);
        md["general.architecture"] = "deepseek2";
        Assert.Null(DeepSeekCpu.Tokenizers.TokenizerLoader.FromGgufMetadata(md, "v3.gguf").ChatTemplate);
    }

    [Theory]
    [InlineData("DeepseekV32ForCausalLM", nameof(ToolCallFormat.DsmlFunctionCalls))]
    [InlineData("DeepseekV4ForCausalLM", nameof(ToolCallFormat.DsmlToolCalls))]
    [InlineData("deepseek32", nameof(ToolCallFormat.DsmlFunctionCalls))]
    public void Each_architecture_names_its_call_format(string architecture, string formatName) =>   // by name: the type is internal
        Assert.Equal(Enum.Parse<ToolCallFormat>(formatName), DeepSeekEncoding.ForArchitecture(architecture)!.ToolCallFormat);
}
