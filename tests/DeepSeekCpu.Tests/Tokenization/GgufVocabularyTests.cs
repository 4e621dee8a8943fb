using System.Text.Json;
using DeepSeekCpu.Tokenizers;
using Xunit;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>The vocabulary `quantize` writes into a GGUF encodes like Hugging Face's tokenizer (reference encodings).</summary>
public class GgufVocabularyTests
{
    [Theory]
    [InlineData("r1-distill-qwen", "deepseek-r1-qwen", 151936)]
    [InlineData("deepseek-v3", "deepseek-v3", 129280)]
    public void Written_vocabulary_reads_back_and_encodes_like_the_reference(string dir, string pre, int modelVocab)
    {
        string folder = DeepSeekCpu.Tests.TestPaths.Fixture("tokenizers", dir);
        var meta = GgufVocabulary.FromHuggingFace(folder, modelVocab).ToDictionary(kv => kv.key, kv => kv.value);
        Assert.Equal(pre, meta["tokenizer.ggml.pre"]);
        Assert.Equal(modelVocab, ((string[])meta["tokenizer.ggml.tokens"]).Length);
        var tok = TokenizerLoader.FromGgufMetadata(meta, "written vocabulary");
        Assert.NotNull(tok.ChatTemplate);
        int checkedLines = 0;
        foreach (var line in File.ReadLines(Path.Combine(folder, "reference-encodings.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            string text = doc.RootElement.GetProperty("text").GetString()!;
            var ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal(ids, tok.Encode(text));
            checkedLines++;
        }
        Assert.True(checkedLines > 100);
    }
}
