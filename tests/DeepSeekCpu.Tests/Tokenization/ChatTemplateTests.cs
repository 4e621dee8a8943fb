using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

public class ChatTemplateTests
{
    private const string Bos = "<｜begin▁of▁sentence｜>";

    [Fact]
    public void R1_renders_reference_chats_text_and_ids()
    {
        HfBpeTokenizer tok = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        IChatTemplate template = Assert.IsType<R1ChatTemplate>(tok.ChatTemplate);
        var chats = TokenizerFixtures.Chats(TokenizerFixtures.Qwen);
        Assert.NotEmpty(chats);
        foreach (var c in chats)
        {
            string text = template.Render(c.Messages, c.AddGenerationPrompt);
            Assert.Equal(c.Text, text);
            // apply_chat_template(tokenize=True) encodes without adding special tokens: BOS is in the text.
            Assert.Equal(c.Ids, tok.Encode(text));
        }
    }

    [Fact]
    public void Template_variant_is_read_from_the_config()
    {
        var r1 = Assert.IsType<R1ChatTemplate>(TokenizerFixtures.Json(TokenizerFixtures.Qwen).ChatTemplate);
        Assert.True(r1.OpensReasoning);
        Assert.True(r1.StripsReasoning);
        Assert.False(r1.JoinsSystemMessages);
        Assert.Equal(Bos, r1.BosToken);

        var v3 = Assert.IsType<R1ChatTemplate>(TokenizerFixtures.Json(TokenizerFixtures.V3).ChatTemplate);
        Assert.False(v3.OpensReasoning);
        Assert.False(v3.StripsReasoning);
        Assert.True(v3.JoinsSystemMessages);
        Assert.Equal(Bos, v3.BosToken);

        Assert.Null(R1ChatTemplate.FromJinja("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}", Bos));
        Assert.Null(R1ChatTemplate.FromJinja(null, Bos));
    }

    // Expected strings below were rendered from the fixtures' chat_template with Python jinja2 3.1.6
    // (ImmutableSandboxedEnvironment, trim_blocks and lstrip_blocks, as transformers' apply_chat_template does).
    private static readonly ChatMessage[] Multi =
    [
        new("system", "A"), new("system", "B"), new("user", "Hi"),
        new("assistant", "<think>\nx\n</think>\n\nHello"), new("user", "Q"),
    ];

    private static readonly ChatMessage[] Tool =
    [
        new("user", "Weather?"), new("tool", "sunny"), new("tool", "warm"), new("assistant", "It is sunny."), new("user", "Thanks"),
    ];

    private static readonly ChatMessage[] ToolLast = [new("user", "Weather?"), new("tool", "sunny")];
    private static readonly ChatMessage[] TwoThink = [new("user", "a"), new("assistant", "r1</think>mid</think>end")];

    public static TheoryData<string, string, bool, string> Renderings() => new()
    {
        { "r1", "multi", true, "<｜begin▁of▁sentence｜>B<｜User｜>Hi<｜Assistant｜>\n\nHello<｜end▁of▁sentence｜><｜User｜>Q<｜Assistant｜><think>\n" },
        { "r1", "multi", false, "<｜begin▁of▁sentence｜>B<｜User｜>Hi<｜Assistant｜>\n\nHello<｜end▁of▁sentence｜><｜User｜>Q" },
        { "r1", "tool", true, "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>warm<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is sunny.<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜><think>\n" },
        { "r1", "tool_last", true, "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>" },
        { "r1", "two_think", true, "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜>end<｜end▁of▁sentence｜><｜Assistant｜><think>\n" },
        { "v3", "multi", true, "<｜begin▁of▁sentence｜>A\n\nB<｜User｜>Hi<｜Assistant｜><think>\nx\n</think>\n\nHello<｜end▁of▁sentence｜><｜User｜>Q<｜Assistant｜>" },
        { "v3", "multi", false, "<｜begin▁of▁sentence｜>A\n\nB<｜User｜>Hi<｜Assistant｜><think>\nx\n</think>\n\nHello<｜end▁of▁sentence｜><｜User｜>Q" },
        { "v3", "tool", true, "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>warm<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is sunny.<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜>" },
        { "v3", "tool_last", false, "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>" },
        { "v3", "two_think", true, "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜>r1</think>mid</think>end<｜end▁of▁sentence｜><｜Assistant｜>" },
    };

    [Theory]
    [MemberData(nameof(Renderings))]
    public void Renders_like_jinja(string variant, string conversation, bool addGenerationPrompt, string expected)
    {
        IChatTemplate template = TokenizerFixtures.Json(variant == "r1" ? TokenizerFixtures.Qwen : TokenizerFixtures.V3).ChatTemplate!;
        ChatMessage[] messages = conversation switch
        {
            "multi" => Multi,
            "tool" => Tool,
            "tool_last" => ToolLast,
            _ => TwoThink,
        };
        Assert.Equal(expected, template.Render(messages, addGenerationPrompt));
    }

    [Fact]
    public void Reasoning_strip_keeps_text_after_last_close()
    {
        Assert.Equal("end", R1ChatTemplate.AfterReasoning("a</think>b</think>end"));
        Assert.Equal("no reasoning", R1ChatTemplate.AfterReasoning("no reasoning"));
        Assert.Equal("", R1ChatTemplate.AfterReasoning("all</think>"));
    }
}
