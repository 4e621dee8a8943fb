using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// A <see cref="ModelFormatException"/> quotes names from the file: the fuzzers found GGUF keys and tensor names with
/// line breaks and 90 KB of bytes in them. Its message is one line and bounded whatever the file holds.
/// </summary>
public class ErrorMessageTests
{
    [Fact]
    public void Control_characters_from_a_file_are_escaped()
    {
        var e = ModelFormatException.In("m.gguf", "metadata a\nb\r\u001b]0;title\u0007\u0085 x\u2028y: unknown value type 9");
        Assert.Equal(@"m.gguf: metadata a\x0ab\x0d\x1b]0;title\x07\x85 x\u2028y: unknown value type 9", e.Message);
    }

    [Fact]
    public void Ordinary_text_is_kept_as_it_is()
    {
        const string text = "model.gguf: tensor blk.0.attn_q.weight: shape [4096, 4096] héllo 😀 ▁ Ġ";
        Assert.Same(text, ModelFormatException.OneLine(text));
    }

    [Fact]
    public void A_long_message_keeps_its_start_and_end()
    {
        string key = new('k', 90_000);
        var e = ModelFormatException.In("m.gguf", $"metadata {key}: unknown value type 7");
        Assert.True(e.Message.Length <= ModelFormatException.MaxMessageLength + 64, $"{e.Message.Length} characters");
        Assert.StartsWith("m.gguf: metadata kkk", e.Message);
        Assert.EndsWith("kkk: unknown value type 7", e.Message);
        Assert.Contains("characters left out", e.Message);
    }
}
