using System.Text;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Parity with Hugging Face's tokenizer on the reference encodings (ids and decoded text, every line), for the
/// tokenizer loaded from tokenizer.json and for the same vocabulary presented as GGUF metadata.
/// </summary>
public class HfBpeTokenizerTests
{
    public static TheoryData<string, bool> Sources() => new()
    {
        { TokenizerFixtures.Qwen, false },
        { TokenizerFixtures.V3, false },
        { TokenizerFixtures.Qwen, true },
        { TokenizerFixtures.V3, true },
    };

    private static HfBpeTokenizer Load(string name, bool gguf) => gguf ? TokenizerFixtures.Gguf(name) : TokenizerFixtures.Json(name);

    [Theory]
    [MemberData(nameof(Sources))]
    public void Encode_matches_every_reference_line(string name, bool gguf)
    {
        HfBpeTokenizer tok = Load(name, gguf);
        var failures = new List<string>();
        var references = TokenizerFixtures.Encodings(name);
        foreach (var r in references)
        {
            int[] ids = tok.Encode(r.Text);
            if (!ids.SequenceEqual(r.Ids))
                failures.Add($"line {r.Line} {Escape(r.Text, 60)}: expected {TokenizerFixtures.Show(r.Ids.Take(40))} got {TokenizerFixtures.Show(ids.Take(40))}");
        }
        Assert.True(references.Count > 250, "reference file looks incomplete");
        Assert.True(failures.Count == 0, $"{failures.Count} of {references.Count} lines differ:\n" + string.Join("\n", failures.Take(10)));
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Decode_matches_every_reference_line(string name, bool gguf)
    {
        HfBpeTokenizer tok = Load(name, gguf);
        var failures = new List<string>();
        foreach (var r in TokenizerFixtures.Encodings(name))
        {
            string text = tok.Decode(r.Ids);
            if (text != r.Decoded)
                failures.Add($"line {r.Line}: expected {Escape(r.Decoded, 80)} got {Escape(text, 80)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} lines differ:\n" + string.Join("\n", failures.Take(10)));
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void Special_ids_come_from_the_files(string name, bool gguf)
    {
        HfBpeTokenizer tok = Load(name, gguf);
        int bos = tok.TokenToId("<｜begin▁of▁sentence｜>")!.Value;
        int eos = tok.TokenToId("<｜end▁of▁sentence｜>")!.Value;
        Assert.Equal(name == TokenizerFixtures.Qwen ? 151646 : 0, bos); // values published in DEEPSEEK.md / the README
        Assert.Equal(name == TokenizerFixtures.Qwen ? 151643 : 1, eos);
        Assert.Equal(bos, tok.BosId);
        Assert.Equal(eos, tok.EosId);
        Assert.Contains(eos, tok.StopIds);
        Assert.DoesNotContain(bos, tok.StopIds);
        Assert.True(tok.AddsBos);

        int[] plain = tok.Encode("Hello");
        int[] withSpecial = tok.Encode("Hello", addSpecial: true);
        Assert.Equal([bos, .. plain], withSpecial);
        Assert.Equal("<｜begin▁of▁sentence｜>Hello", tok.Decode(withSpecial));
    }

    [Fact]
    public void Vocab_sizes_and_think_tokens()
    {
        HfBpeTokenizer qwen = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        Assert.Equal(151665, qwen.VocabSize); // 151643 BPE tokens + 22 added
        Assert.Equal(151648, qwen.TokenToId("<think>"));
        Assert.Equal(151649, qwen.TokenToId("</think>"));
        Assert.Equal("</think>", qwen.Decode([151649]));
        Assert.Equal("Ġthe", qwen.IdToToken(279));

        HfBpeTokenizer v3 = TokenizerFixtures.Json(TokenizerFixtures.V3);
        Assert.Equal(128815, v3.VocabSize);
        Assert.Null(v3.TokenToId("<think>")); // V3 has no reasoning tokens
    }

    [Fact]
    public void Gguf_and_json_agree_on_tables()
    {
        foreach (string name in new[] { TokenizerFixtures.Qwen, TokenizerFixtures.V3 })
        {
            HfBpeTokenizer json = TokenizerFixtures.Json(name), gguf = TokenizerFixtures.Gguf(name);
            Assert.Equal(json.VocabSize, gguf.VocabSize);
            Assert.Equal(json.BosId, gguf.BosId);
            Assert.Equal(json.EosId, gguf.EosId);
            Assert.Equal(json.StopIds.Order(), gguf.StopIds.Order());
            for (int id = 0; id < json.VocabSize; id += 97)
                Assert.True(json.TokenBytes(id).SequenceEqual(gguf.TokenBytes(id)), $"{name} token {id} bytes differ");
            Assert.NotNull(gguf.ChatTemplate);
        }
    }

    [Fact]
    public void Token_bytes_are_byte_level_decoded()
    {
        HfBpeTokenizer qwen = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        Assert.Equal(" the"u8.ToArray(), qwen.TokenBytes(279).ToArray());             // "Ġthe"
        Assert.Equal("\n"u8.ToArray(), qwen.TokenBytes(198).ToArray());               // "Ċ"
        Assert.Equal(Encoding.UTF8.GetBytes("<｜User｜>"), qwen.TokenBytes(151644).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => qwen.TokenBytes(qwen.VocabSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => qwen.TokenBytes(-1));
    }

    [Fact]
    public void Added_tokens_win_over_text_and_longest_match()
    {
        HfBpeTokenizer qwen = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        // "</think>" must not be read as "<" + "/think>" nor as "<think>" somewhere inside.
        Assert.Equal([151649], qwen.Encode("</think>"));
        Assert.Equal([151648, 151649], qwen.Encode("<think></think>"));
        // An incomplete marker is plain text.
        int[] partial = qwen.Encode("<｜User");
        Assert.DoesNotContain(151644, partial);
        Assert.Equal("<｜User", qwen.Decode(partial));
    }

    [Fact]
    public void Astral_characters_are_classified_by_code_point()
    {
        // '𝔘' (U+1D518) is a letter: the pre-tokenizer must keep "a𝔘b" together as one word, like HF does.
        HfBpeTokenizer qwen = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        var pieces = new List<(int Offset, int Length)>();
        qwen.PreTokenizer.Split(" a𝔘b!😀", pieces);
        Assert.Equal([(0, 5), (5, 3)], pieces); // " a𝔘b" then "!😀" (the emoji is a symbol, grouped with '!')
    }

    [Fact]
    public void Encode_long_text_round_trips()
    {
        var all = string.Join("\n", TokenizerFixtures.Encodings(TokenizerFixtures.Qwen).Select(r => r.Text));
        foreach (string name in new[] { TokenizerFixtures.Qwen, TokenizerFixtures.V3 })
        {
            HfBpeTokenizer tok = TokenizerFixtures.Json(name);
            int[] ids = tok.Encode(all);
            string expected = name == TokenizerFixtures.Qwen ? Nfc.Normalize(all) : all; // Qwen normalizes NFC
            Assert.Equal(expected, tok.Decode(ids));
        }
    }

    private static string Escape(string s, int max)
    {
        string e = s.Length > max ? s[..max] + "…" : s;
        return "\"" + e.Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t") + "\"";
    }
}
