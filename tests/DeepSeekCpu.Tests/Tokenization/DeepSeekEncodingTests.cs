using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// DeepSeek-V3.2's and V4's prompt encodings against renderings made by running DeepSeek's own encoders
/// (encoding_dsv32.py, encoding_dsv4.py; tools/reference/render_deepseek_encodings.py), in both thinking modes, with and
/// without drop_thinking and, for V4, each reasoning effort; where DeepSeek's encoder refuses a conversation, so do we.
/// </summary>
public class DeepSeekEncodingTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");

    [Theory]
    [InlineData("dsv32", nameof(DeepSeekEncoding.Version.V32), 40)]
    [InlineData("dsv4", nameof(DeepSeekEncoding.Version.V4), 120)]
    public void Renders_as_deepseeks_encoder(string name, string versionName, int count)
    {
        var version = Enum.Parse<DeepSeekEncoding.Version>(versionName);   // by name: the type is internal, the test public
        int seen = 0;
        foreach (string line in File.ReadLines(Path.Combine(Dir, $"reference-{name}.jsonl")))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            var messages = r.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToArray();
            bool thinking = r.GetProperty("thinking_mode").GetString() == "thinking";
            string? effort = r.GetProperty("reasoning_effort").ValueKind == JsonValueKind.Null ? null : r.GetProperty("reasoning_effort").GetString();
            IChatTemplate t = new DeepSeekEncoding(version, r.GetProperty("drop_thinking").GetBoolean(), effort);
            if (r.TryGetProperty("error", out _))
                Assert.Throws<ArgumentException>(() => t.Render(messages, true, thinking));
            else
                Assert.Equal(r.GetProperty("text").GetString(), t.Render(messages, true, thinking));
            seen++;
        }
        Assert.Equal(count, seen);
    }

    [Fact]
    public void V32_readme_example_encodes_to_its_published_ids()
    {
        // DeepSeek-V3.2's README (encoding section): the prompt and its token ids with the model's tokenizer, which is
        // DeepSeek-V3's vocabulary with R1's "<think>" / "</think>" (LaterChatTemplateTests.V31Tokenizer).
        IChatTemplate t = new DeepSeekEncoding(DeepSeekEncoding.Version.V32);
        string text = t.Render([new("user", "hello"), new("assistant", "Hello! I am DeepSeek."), new("user", "1+1=?")], true, true);
        Assert.Equal("<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜></think>Hello! I am DeepSeek.<｜end▁of▁sentence｜><｜User｜>1+1=?<｜Assistant｜><think>", text);
        Assert.Equal([0, 128803, 33310, 128804, 128799, 19923, 3, 342, 1030, 22651, 4374, 1465, 16, 1, 128803, 19, 13, 19, 127252, 128804, 128798],
            LaterChatTemplateTests.V31Tokenizer.Encode(text));
        Assert.Throws<ArgumentException>(() => new DeepSeekEncoding(DeepSeekEncoding.Version.V4, reasoningEffort: "extreme"));
    }

    [Theory]
    [InlineData("DeepseekV32ForCausalLM", nameof(DeepSeekEncoding.Version.V32))]
    [InlineData("DeepseekV4ForCausalLM", nameof(DeepSeekEncoding.Version.V4))]
    public void A_model_folder_without_a_template_gets_the_encoding_its_architecture_names(string architecture, string versionName)
    {
        var version = Enum.Parse<DeepSeekEncoding.Version>(versionName);   // by name: the type is internal, the test public
        using var tmp = TestPaths.NewTempDir();
        string src = TokenizerFixtures.TokenizerDir(TokenizerFixtures.V3);
        File.Copy(Path.Combine(src, "tokenizer.json"), tmp.File("tokenizer.json"));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "tokenizer_config.json")))!.AsObject();
        cfg.Remove("chat_template");   // V3.2 and V4 ship none
        File.WriteAllText(tmp.File("tokenizer_config.json"), cfg.ToJsonString());
        File.WriteAllText(tmp.File("config.json"), $$"""{"architectures": ["{{architecture}}"], "model_type": "deepseek_v32"}""");
        var tok = TokenizerLoader.FromDirectory(tmp.Path);
        Assert.Equal(version, Assert.IsType<DeepSeekEncoding>(tok.ChatTemplate).EncodingVersion);
        File.WriteAllText(tmp.File("config.json"), """{"architectures": ["DeepseekV3ForCausalLM"]}""");
        Assert.Null(TokenizerLoader.FromDirectory(tmp.Path).ChatTemplate);
    }
}
