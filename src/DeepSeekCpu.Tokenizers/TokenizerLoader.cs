namespace DeepSeekCpu.Tokenizers;

/// <summary>Entry points for loading a model's tokenizer.</summary>
internal static class TokenizerLoader
{
    /// <summary>
    /// Loads the tokenizer of a Hugging Face model folder: <c>tokenizer.json</c>, with <c>tokenizer_config.json</c>
    /// (BOS/EOS, add_bos_token, chat template) and <c>generation_config.json</c> (extra stop ids) when present.
    /// </summary>
    /// <exception cref="InvalidFileException">One line naming the folder or file and what was expected.</exception>
    public static HfBpeTokenizer FromDirectory(string dir)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path))
            throw new InvalidFileException($"{dir}: expected a tokenizer.json file in this folder");
        return HfBpeTokenizer.FromTokenizerJson(path);
    }

    /// <summary>Builds the tokenizer from GGUF metadata (<c>tokenizer.ggml.*</c>, <c>tokenizer.chat_template</c>).</summary>
    /// <param name="metadata">Key → value: strings as string, integers in any integer box, bools as bool, arrays as typed arrays.</param>
    /// <param name="source">Names the data in error messages, e.g. the .gguf path.</param>
    public static HfBpeTokenizer FromGgufMetadata(IReadOnlyDictionary<string, object> metadata, string source = "GGUF metadata")
        => HfBpeTokenizer.FromGgufMetadata(metadata, source);
}
