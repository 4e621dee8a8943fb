using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>Bad input fails with one line that names the file (or GGUF source) and what was expected.</summary>
public sealed class MalformedFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dsc-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static void AssertOneLine(Exception e, string mustName, string mustSay)
    {
        Assert.IsType<InvalidFileException>(e);
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith(mustName + ":", e.Message);
        Assert.Contains(mustSay, e.Message);
    }

    [Fact]
    public void Truncated_llama2c_tokenizer()
    {
        byte[] full = File.ReadAllBytes(TokenizerFixtures.Tok512Path());
        string path = Path.Combine(_dir, "tokenizer.bin");
        File.WriteAllBytes(path, full[..1000]);
        AssertOneLine(Assert.ThrowsAny<Exception>(() => Llama2cTokenizer.Load(path, 512)), path, "truncated at token");

        File.WriteAllBytes(path, full[..2]);
        AssertOneLine(Assert.ThrowsAny<Exception>(() => Llama2cTokenizer.Load(path, 512)), path, "max_token_length");

        // The file holds 512 tokens: asking for more must fail, asking for fewer is what llama2.c allows.
        File.WriteAllBytes(path, full);
        AssertOneLine(Assert.ThrowsAny<Exception>(() => Llama2cTokenizer.Load(path, 600)), path, "truncated at token 512 of 600");
    }

    [Fact]
    public void Tokenizer_json_without_model_vocab()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "BPE", "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}""");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromDirectory(_dir)), path, "model.vocab");
    }

    [Fact]
    public void Tokenizer_json_that_is_not_json()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, "{\"model\": {\"vocab\": {\"a\": 0,,}}}\n");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path)), path, "not valid JSON");
    }

    [Fact]
    public void Tokenizer_json_with_unsupported_pre_tokenizer()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}}""");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path)), path, "'Metaspace' is not supported");
    }

    [Fact]
    public void Tokenizer_json_with_merge_outside_vocab()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}}""");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => HfBpeTokenizer.FromTokenizerJson(path)), path, "inconsistent BPE");
    }

    [Fact]
    public void Missing_directory_file()
    {
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromDirectory(_dir)), _dir, "tokenizer.json");
    }

    [Fact]
    public void Gguf_unknown_pre_tokenizer_names_key_and_value()
    {
        var md = Minimal();
        md["tokenizer.ggml.pre"] = "mystery-bpe";
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromGgufMetadata(md, "m.gguf")), "m.gguf", "tokenizer.ggml.pre = 'mystery-bpe'");
    }

    [Fact]
    public void Gguf_missing_or_mistyped_keys()
    {
        var md = Minimal();
        md.Remove("tokenizer.ggml.tokens");
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromGgufMetadata(md, "m.gguf")), "m.gguf", "tokenizer.ggml.tokens");

        md = Minimal();
        md["tokenizer.ggml.model"] = "llama";
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromGgufMetadata(md, "m.gguf")), "m.gguf", "tokenizer.ggml.model = 'llama'");

        md = Minimal();
        md["tokenizer.ggml.bos_token_id"] = 99L;
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromGgufMetadata(md, "m.gguf")), "m.gguf", "bos_token_id = 99");

        md = Minimal();
        md["tokenizer.ggml.token_type"] = new[] { 1 };
        AssertOneLine(Assert.ThrowsAny<Exception>(() => TokenizerLoader.FromGgufMetadata(md, "m.gguf")), "m.gguf", "token_type");
    }

    [Fact]
    public void Gguf_minimal_vocabulary_works_with_any_integer_boxes()
    {
        var md = Minimal();
        md["tokenizer.ggml.token_type"] = new uint[] { 1, 1, 1, 3 };
        md["tokenizer.ggml.eos_token_id"] = (ushort)3;
        HfBpeTokenizer tok = TokenizerLoader.FromGgufMetadata(md, "m.gguf");
        Assert.Equal([2, 3], tok.Encode("ab<eos>"));
        Assert.Equal("ab<eos>", tok.Decode([2, 3]));
        Assert.Equal(3, tok.EosId);
        Assert.Contains(3, tok.StopIds);
    }

    [Fact]
    public void Gguf_padding_entries_count_but_stand_for_nothing()
    {
        var md = Minimal();
        md["tokenizer.ggml.tokens"] = new[] { "a", "b", "ab", "<eos>", "[PAD4]" };
        md["tokenizer.ggml.token_type"] = new[] { 1, 1, 1, 3, 5 };
        HfBpeTokenizer tok = TokenizerLoader.FromGgufMetadata(md, "m.gguf");
        Assert.Equal(5, tok.VocabSize);
        Assert.Equal(0, tok.TokenBytes(4).Length);
        Assert.Equal("ab", tok.Decode([2, 4]));
        Assert.Equal([0, 0], tok.Encode("aa"));
    }

    [Fact]
    public void Lone_surrogates_do_not_break_encoding()
    {
        HfBpeTokenizer qwen = TokenizerFixtures.Json(TokenizerFixtures.Qwen);
        int[] ids = qwen.Encode("a\uD800b");
        Assert.Equal("a\uFFFDb", qwen.Decode(ids)); // UTF-8 has no surrogates: the replacement character is encoded
    }

    private static Dictionary<string, object> Minimal() => new()
    {
        ["tokenizer.ggml.model"] = "gpt2",
        ["tokenizer.ggml.pre"] = "qwen2",
        ["tokenizer.ggml.tokens"] = new[] { "a", "b", "ab", "<eos>" },
        ["tokenizer.ggml.merges"] = new[] { "a b" },
    };
}
