using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Hugging Face pre-tokenizer and added-token semantics on small cases. Expected splits are the examples of
/// HF tokenizers' documentation (SplitDelimiterBehavior on "the-final--countdown", Digits on "Call 123 please"),
/// also used by huggingface/swift-transformers' SplitTests, and RoBERTa's lstrip "&lt;mask&gt;".
/// </summary>
public class PreTokenizerTests
{
    private static string[] Pieces(HfPreTokenizer.Step step, string text)
    {
        var pre = new HfPreTokenizer([step]);
        var pieces = new List<(int Offset, int Length)>();
        pre.Split(text, pieces);
        return pieces.Select(p => text.Substring(p.Offset, p.Length)).ToArray();
    }

    private static HfPreTokenizer.Step Dash(HfPreTokenizer.SplitBehavior b) => HfPreTokenizer.Regex("-", b);

    [Fact]
    public void Split_behaviors()
    {
        const string text = "the-final--countdown";
        Assert.Equal(["the", "final", "countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.Removed), text));
        Assert.Equal(["the", "-", "final", "-", "-", "countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.Isolated), text));
        Assert.Equal(["the-", "final-", "-", "countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.MergedWithPrevious), text));
        Assert.Equal(["the", "-final", "-", "-countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.MergedWithNext), text));
        Assert.Equal(["the", "-", "final", "--", "countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.Contiguous), text));
        Assert.Equal(["-", "the-", "final-", "-", "countdown-", "-"], Pieces(Dash(HfPreTokenizer.SplitBehavior.MergedWithPrevious), "-the-final--countdown--"));
        Assert.Equal(["-", "-the", "-final", "-", "-countdown"], Pieces(Dash(HfPreTokenizer.SplitBehavior.MergedWithNext), "--the-final--countdown"));
    }

    [Fact]
    public void Digits()
    {
        Assert.Equal(["Call ", "123", " please"], Pieces(HfPreTokenizer.Digits(false), "Call 123 please"));
        Assert.Equal(["Call ", "1", "2", "3", " please"], Pieces(HfPreTokenizer.Digits(true), "Call 123 please"));
        Assert.Equal(["x", "𝟏", "𝟐"], Pieces(HfPreTokenizer.Digits(true), "x𝟏𝟐")); // astral digits count as digits
    }

    [Fact]
    public void Gpt2_byte_level_regex()
    {
        Assert.Equal(["Hello", ",", " world", "!", "  ", " it", "'s"], Pieces(new HfPreTokenizer.ByteLevelStep(useRegex: true), "Hello, world!   it's"));
        Assert.Equal(["unchanged text"], Pieces(new HfPreTokenizer.ByteLevelStep(useRegex: false), "unchanged text"));
    }

    private static string[] Segments(AddedTokenMatcher m, string text)
    {
        var segments = new List<(int Start, int Length, int TokenId)>();
        m.Split(text, segments);
        return segments.Select(s => (s.TokenId >= 0 ? "#" : "") + text.Substring(s.Start, s.Length)).ToArray();
    }

    [Fact]
    public void Added_token_flags()
    {
        var lstrip = new AddedTokenMatcher([new AddedToken(1, "<mask>", true, LStrip: true)]);
        Assert.Equal(["I saw a", "# <mask>", " dog"], Segments(lstrip, "I saw a <mask> dog"));

        var rstrip = new AddedTokenMatcher([new AddedToken(1, "<mask>", true, RStrip: true)]);
        Assert.Equal(["I saw a ", "#<mask> ", "dog"], Segments(rstrip, "I saw a <mask> dog"));

        var single = new AddedToken(1, "ab", false, SingleWord: true);
        Assert.Equal(["#ab", " cab ", "#ab"], Segments(new AddedTokenMatcher([single]), "ab cab ab"));

        var longest = new AddedTokenMatcher([new AddedToken(1, "<a>", true), new AddedToken(2, "<a><b>", true)]);
        Assert.Equal(["x", "#<a><b>", "#<a>", "y"], Segments(longest, "x<a><b><a>y"));
    }
}
