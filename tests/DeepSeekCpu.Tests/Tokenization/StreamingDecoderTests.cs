using System.Text;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

public class StreamingDecoderTests
{
    [Theory]
    [InlineData(TokenizerFixtures.Qwen)]
    [InlineData(TokenizerFixtures.V3)]
    public void Streaming_equals_full_decode_and_never_breaks_a_character(string name)
    {
        HfBpeTokenizer tok = TokenizerFixtures.Json(name);
        int splitCharacters = 0;
        foreach (var r in TokenizerFixtures.Encodings(name))
        {
            var decoder = new StreamingDecoder(tok);
            var sb = new StringBuilder();
            foreach (int id in r.Ids)
            {
                string chunk = decoder.Append(id);
                AssertWellFormed(chunk, r.Line);
                Assert.DoesNotContain('\uFFFD', chunk); // the references are valid text: no replacement expected
                if (chunk.Length == 0 && tok.TokenBytes(id).Length > 0)
                    splitCharacters++;
                sb.Append(chunk);
            }
            Assert.False(decoder.HasPendingBytes, $"line {r.Line}: bytes left over");
            sb.Append(decoder.Flush());
            Assert.Equal(tok.Decode(r.Ids), sb.ToString());
        }
        // The references contain emoji and CJK split across tokens, so holding back must actually have happened.
        Assert.True(splitCharacters > 10, $"only {splitCharacters} tokens were held back");
    }

    [Fact]
    public void Emoji_split_over_single_byte_tokens_is_emitted_whole()
    {
        // "😀" = F0 9F 98 80, fed one byte per token.
        var tok = new BytesTokenizer([[0xF0], [0x9F], [0x98], [0x80], "a"u8.ToArray()]);
        var decoder = new StreamingDecoder(tok);
        Assert.Equal("", decoder.Append(0));
        Assert.Equal("", decoder.Append(1));
        Assert.Equal("", decoder.Append(2));
        Assert.Equal("😀", decoder.Append(3));
        Assert.Equal("a", decoder.Append(4));
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void Broken_sequences_become_replacement_characters()
    {
        var tok = new BytesTokenizer([[0xE4, 0xBD], "A"u8.ToArray(), [0xFF], [0xF0, 0x9F]]);
        var decoder = new StreamingDecoder(tok);
        Assert.Equal("", decoder.Append(0));          // could still become 你 (E4 BD A0)
        Assert.Equal("\uFFFDA", decoder.Append(1));   // 'A' proves it never will
        Assert.Equal("\uFFFD", decoder.Append(2));    // 0xFF can never start a character: emitted at once
        Assert.Equal("", decoder.Append(3));
        Assert.Equal("\uFFFD", decoder.Flush());      // stream ended inside a character
        Assert.False(decoder.HasPendingBytes);
        // Same as decoding everything at once (maximal-subpart replacement).
        Assert.Equal("\uFFFDA\uFFFD\uFFFD", tok.Decode([0, 1, 2, 3]));
    }

    [Fact]
    public void Impossible_second_byte_is_not_held_back()
    {
        // E0 must be followed by A0..BF; E0 80 can never complete, so nothing is held.
        Assert.Equal(0, StreamingDecoder.IncompleteTailLength([0xE0, 0x80]));
        Assert.Equal(2, StreamingDecoder.IncompleteTailLength([0xE0, 0xA0]));
        Assert.Equal(0, StreamingDecoder.IncompleteTailLength([0xED, 0xA0])); // would be a surrogate
        Assert.Equal(3, StreamingDecoder.IncompleteTailLength([0x41, 0xF0, 0x9F, 0x98]));
        Assert.Equal(0, StreamingDecoder.IncompleteTailLength([0xF0, 0x9F, 0x98, 0x80]));
        Assert.Equal(0, StreamingDecoder.IncompleteTailLength([0x80, 0x80, 0x80]));
        Assert.Equal(1, StreamingDecoder.IncompleteTailLength([0xC3]));
    }

    [Fact]
    public void Llama2c_space_after_bos_is_dropped_when_streaming()
    {
        var tok = Llama2cTokenizer.Load(TokenizerFixtures.Tok512Path(), 512);
        int[] ids = tok.Encode("Once upon a time", addSpecial: true);
        var decoder = new StreamingDecoder(tok, previousId: ids[0]);
        var sb = new StringBuilder();
        foreach (int id in ids[1..])
            sb.Append(decoder.Append(id));
        Assert.Equal("Once upon a time", sb.ToString());
    }

    private static void AssertWellFormed(string chunk, int line)
    {
        for (int i = 0; i < chunk.Length; i++)
        {
            if (char.IsHighSurrogate(chunk[i]))
            {
                Assert.True(i + 1 < chunk.Length && char.IsLowSurrogate(chunk[i + 1]), $"line {line}: chunk ends inside a surrogate pair");
                i++;
            }
            else
            {
                Assert.False(char.IsLowSurrogate(chunk[i]), $"line {line}: lone low surrogate");
            }
        }
    }

    /// <summary>A tokenizer whose tokens are arbitrary byte strings, to drive the decoder through edge cases.</summary>
    private sealed class BytesTokenizer(byte[][] tokens) : ITokenizer
    {
        public int VocabSize => tokens.Length;
        public int? BosId => null;
        public int? EosId => null;
        public IReadOnlySet<int> StopIds => new HashSet<int>();
        public IChatTemplate? ChatTemplate => null;
        public int[] Encode(string text, bool addSpecial = false) => throw new NotSupportedException();
        public string Decode(ReadOnlySpan<int> ids)
        {
            var bytes = new List<byte>();
            foreach (int id in ids)
                bytes.AddRange(tokens[id]);
            return Encoding.UTF8.GetString(bytes.ToArray());
        }
        public ReadOnlySpan<byte> TokenBytes(int id) => tokens[id];
        public int? TokenToId(string token) => null;
    }
}
