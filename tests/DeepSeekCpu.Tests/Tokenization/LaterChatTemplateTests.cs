using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// The chat templates DeepSeek shipped after R1 (V3-0324, R1-0528, V3.1), recognised from their Jinja text and rendered
/// token for token as Hugging Face renders them: tests/fixtures/chat-templates holds each template's text and
/// reference renderings made by @huggingface/jinja and @huggingface/tokenizers (tools/reference/render_chat_templates.mjs).
/// </summary>
public class LaterChatTemplateTests
{
    private const string Bos = "<｜begin▁of▁sentence｜>";

    private static string Dir => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");
    private static string Jinja(string name) => File.ReadAllText(Path.Combine(Dir, name + ".jinja"));

    /// <summary>
    /// DeepSeek-V3's tokenizer with R1's added tokens (placeholders 128798/128799 renamed "&lt;think&gt;" /
    /// "&lt;/think&gt;", as R1, R1-0528 and V3.1 ship them) and V3.1's template in its tokenizer_config.json: the
    /// tokenizer the references were encoded with. Built once (loading the vocabulary is the slow part).
    /// </summary>
    internal static HfBpeTokenizer V31Tokenizer => s_tok.Value;

    private static readonly Lazy<HfBpeTokenizer> s_tok = new(() =>
    {
        string src = TokenizerFixtures.TokenizerDir(TokenizerFixtures.V3);
        string dir = Path.Combine(Path.GetTempPath(), "dscpu-v31-tok-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        var tok = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "tokenizer.json")))!;
        foreach (var added in tok["added_tokens"]!.AsArray())
        {
            int id = added!["id"]!.GetValue<int>();
            if (id is 128798 or 128799) { added["content"] = id == 128798 ? "<think>" : "</think>"; added["special"] = false; }
        }
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tok.ToJsonString());
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "tokenizer_config.json")))!;
        cfg["chat_template"] = Jinja("v3.1");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), cfg.ToJsonString());
        return TokenizerLoader.FromDirectory(dir);
    });

    public sealed record Case(ChatMessage[] Messages, bool AddGenerationPrompt, bool? Thinking, string Text, int[] Ids);

    private static List<Case> Cases(string name)
    {
        var list = new List<Case>();
        foreach (string line in File.ReadLines(Path.Combine(Dir, $"reference-{name}.jsonl")))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            list.Add(new Case(
                r.GetProperty("messages").EnumerateArray().Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToArray(),
                r.GetProperty("add_generation_prompt").GetBoolean(),
                r.GetProperty("thinking").ValueKind == JsonValueKind.Null ? null : r.GetProperty("thinking").GetBoolean(),
                r.GetProperty("text").GetString()!,
                r.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()));
        }
        return list;
    }

    [Theory]
    [InlineData("v3-0324", nameof(DeepSeekChatStyle.AssistantAfterUser), false)]
    [InlineData("r1-0528", nameof(DeepSeekChatStyle.AssistantAfterUser), true)]
    [InlineData("v3.1", nameof(DeepSeekChatStyle.ThinkingSwitch), true)]
    public void Renders_hugging_face_references_token_for_token(string name, string styleName, bool strips)
    {
        var style = Enum.Parse<DeepSeekChatStyle>(styleName);   // by name: the type is internal, the test public
        var t = R1ChatTemplate.FromJinja(Jinja(name), Bos);
        Assert.NotNull(t);
        Assert.Equal(style, t.Style);
        Assert.Equal(strips, t.StripsReasoning);
        Assert.True(t.JoinsSystemMessages);
        var cases = Cases(name);
        Assert.True(cases.Count >= 22, $"{cases.Count} references");
        foreach (var c in cases)
        {
            string text = t.Render(c.Messages, c.AddGenerationPrompt, c.Thinking);
            Assert.Equal(c.Text, text);
            Assert.Equal(c.Ids, s_tok.Value.Encode(text));
        }
    }

    [Fact]
    public void V31_is_told_apart_by_the_template_text_and_switches_thinking()
    {
        // The tokenizer folder's tokenizer_config.json holds V3.1's template: no file name is consulted.
        var t = Assert.IsType<R1ChatTemplate>(s_tok.Value.ChatTemplate);
        Assert.True(((IChatTemplate)t).HasThinkingSwitch);
        ChatMessage[] chat = [new("user", "Hi")];
        Assert.EndsWith("<｜Assistant｜></think>", t.Render(chat));                        // the template's default: off
        Assert.EndsWith("<｜Assistant｜><think>", ((IChatTemplate)t).Render(chat, true, true));
        Assert.EndsWith("<｜Assistant｜></think>", ((IChatTemplate)t).Render(chat, true, false));
        // the older styles have no switch and ignore it
        var r1 = R1ChatTemplate.FromJinja(Jinja("r1-0528"), Bos)!;
        Assert.False(((IChatTemplate)r1).HasThinkingSwitch);
        Assert.Equal(r1.Render(chat), ((IChatTemplate)r1).Render(chat, true, true));
    }
}
