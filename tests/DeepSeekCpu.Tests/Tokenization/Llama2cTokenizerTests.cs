using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

public class Llama2cTokenizerTests
{
    private static readonly Lazy<Llama2cTokenizer> s_tok = new(() => Llama2cTokenizer.Load(TokenizerFixtures.Tok512Path(), 512));
    private static Llama2cTokenizer Tok => s_tok.Value;

    [Fact]
    public void Reads_the_vocabulary()
    {
        Assert.Equal(512, Tok.VocabSize);
        Assert.Equal(7, Tok.MaxTokenLength);
        Assert.Equal("<unk>", Tok.Piece(0));
        Assert.Equal("\n<s>\n", Tok.Piece(1));   // how llama2.c's tokenizer.py exports BOS/EOS
        Assert.Equal("\n</s>\n", Tok.Piece(2));
        Assert.Equal("<0x00>", Tok.Piece(3));
        Assert.Equal("<0xFF>", Tok.Piece(258));
        Assert.Equal(" t", Tok.Piece(259));
        Assert.Equal(0f, Tok.Score(259));
        Assert.Equal(-1f, Tok.Score(260)); // "he"
        Assert.Equal(1, Tok.BosId);
        Assert.Equal(2, Tok.EosId);
        Assert.Equal(new HashSet<int> { 1, 2 }, Tok.StopIds.ToHashSet());
        Assert.Null(Tok.ChatTemplate);
    }

    // Expected ids: llama2.c run.c encode() ported line by line to Python and run over the same tok512.bin
    // (piece names shown for hand checking: the best-scoring merge wins, ties go to the leftmost pair).
    public static TheoryData<string, int[]> Encodings() => new()
    {
        { "Once upon a time", [403, 407, 261, 378] },                      // " Once" " upon" " a" " time"
        { "a", [261] },                                                   // dummy prefix " " merged with "a"
        { "", [] },                                                       // no dummy prefix for empty text
        { "Hello\nworld", [346, 306, 414, 13, 424, 304, 341] },           // "\n" has no piece: byte <0x0A> = 10 + 3
        { "café 😀", [280, 412, 431, 485, 410, 243, 162, 155, 131] },     // "é" is a piece; the emoji falls back to 4 bytes
        { "Lily and Tom were friends. They liked to play in the park!",
            [317, 269, 274, 287, 382, 276, 374, 419, 426, 342, 397, 355, 267, 337, 322, 265, 282, 295, 433, 443] },
    };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Encodes_like_llama2c(string text, int[] expected)
    {
        Assert.Equal(expected, Tok.Encode(text));
        Assert.Equal([1, .. expected], Tok.Encode(text, addSpecial: true));
    }

    [Theory]
    [InlineData("Once upon a time, there was a little girl named Lily.")]
    [InlineData("café 😀 and 你好")]
    [InlineData("x")]
    public void Decode_round_trips(string text)
    {
        // Without BOS the dummy-prefix space stays; after BOS llama2.c strips it.
        Assert.Equal(" " + text, Tok.Decode(Tok.Encode(text)));
        Assert.Equal("\n<s>\n" + text, Tok.Decode(Tok.Encode(text, addSpecial: true)));
    }

    [Fact]
    public void Byte_pieces_decode_to_raw_bytes()
    {
        Assert.Equal([0x0A], Tok.TokenBytes(13).ToArray());
        Assert.Equal([0xF0], Tok.TokenBytes(0xF0 + 3).ToArray());
        Assert.Equal("😀", Tok.Decode([243, 162, 155, 131]));
        Assert.Equal("\uFFFD", Tok.Decode([243])); // a lone lead byte is not text
        Assert.Equal(" Once"u8.ToArray(), Tok.TokenBytes(403).ToArray());
        Assert.Equal("Once"u8.ToArray(), Tok.TokenBytes(403, previousId: 1).ToArray());
        Assert.Equal(403, Tok.TokenToId(" Once"));
        Assert.Null(Tok.TokenToId("not a piece"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.TokenBytes(512));
    }
}
