using DeepSeekCpu.Formats;
using DeepSeekCpu.Hub;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;

namespace DeepSeekCpu;

/// <summary>
/// A model and its tokenizer loaded from one path: a Hugging Face folder (config.json, safetensors, tokenizer.json),
/// a .gguf file (weights and vocabulary) or a llama2.c .bin (its tokenizer.bin beside it or given explicitly).
/// The entry point for applications, the CLI and the server. The path may also be a Hugging Face repo id
/// (org/repo[@rev][:QUANT]): it is resolved through the Hugging Face cache (DeepSeekCpu.Hub.ModelLocator), downloading
/// what is missing unless HF_HUB_OFFLINE is set.
/// </summary>
public sealed class LocalModel : IDisposable
{
    public ILanguageModel Model { get; }
    public ITokenizer Tokenizer { get; }
    public ModelFormat Format { get; }
    public string Path { get; }

    private LocalModel(string path, ILanguageModel model, ITokenizer tokenizer, ModelFormat format)
    {
        Path = path; Model = model; Tokenizer = tokenizer; Format = format;
    }

    /// <summary>
    /// Loads a model and its tokenizer (from <paramref name="tokenizerPath"/> when given: a folder, tokenizer.json or
    /// llama2.c tokenizer.bin). <paramref name="options"/>: memory mode, threads, conversion of matrices at load.
    /// </summary>
    public static LocalModel Load(string path, string? tokenizerPath = null, LoadOptions? options = null)
    {
        path = ModelLocator.Resolve(path);   // a Hugging Face repo id: the cached snapshot, fetched first if needed
        options ??= LoadOptions.Default;
        var (config, weights, format, gguf) = ModelLoader.OpenWeights(path, options.Memory);
        try
        {
            var tokenizer = LoadTokenizer(path, format, config, gguf, tokenizerPath);
            var model = ModelLoader.Build(config, weights, options);
            return new LocalModel(path, model, tokenizer, format);
        }
        catch { weights.Dispose(); throw; }
    }

    /// <summary>Loads only the tokenizer of a model path (or a tokenizer folder / tokenizer.json / llama2.c tokenizer.bin).</summary>
    public static ITokenizer LoadTokenizerOnly(string path)
    {
        path = ModelLocator.Resolve(path);
        if (Directory.Exists(path))
        {
            if (File.Exists(System.IO.Path.Combine(path, "tokenizer.json"))) return TokenizerLoader.FromDirectory(path);
            throw new ModelFormatException($"{path}: folder has no tokenizer.json");
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            return TokenizerLoader.FromDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        var format = ModelLoader.Detect(path);
        if (format == ModelFormat.Gguf)
        {
            using var g = GgufFile.Open(path);
            return TokenizerLoader.FromGgufMetadata(g.Metadata, path);
        }
        // A llama2.c tokenizer.bin on its own, or a checkpoint with one beside it.
        if (IsLlama2cTokenizer(path)) return Llama2cTokenizer.Load(path, 0);
        using var checkpoint = Llama2cCheckpoint.Open(path);
        return LoadTokenizer(path, format, ModelConfig.FromLlama2c(checkpoint.Header), null, null);
    }

    private static bool IsLlama2cTokenizer(string path)
    {
        string name = System.IO.Path.GetFileName(path);
        return name.StartsWith("tok", StringComparison.OrdinalIgnoreCase) && name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase);
    }

    private static ITokenizer LoadTokenizer(string path, ModelFormat format, ModelConfig config, GgufFile? gguf, string? tokenizerPath)
    {
        if (tokenizerPath != null)
        {
            if (Directory.Exists(tokenizerPath) || tokenizerPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                return LoadTokenizerOnly(tokenizerPath);
            if (!File.Exists(tokenizerPath)) throw new ModelFormatException($"{tokenizerPath}: tokenizer file not found");
            return Llama2cTokenizer.Load(tokenizerPath, config.VocabSize);
        }
        switch (format)
        {
            case ModelFormat.HuggingFace:
                if (!File.Exists(System.IO.Path.Combine(path, "tokenizer.json")))
                    throw new ModelFormatException($"{path}: folder has no tokenizer.json (give one with --tokenizer)");
                return TokenizerLoader.FromDirectory(path);
            case ModelFormat.Gguf:
                return TokenizerLoader.FromGgufMetadata(gguf!.Metadata, path);
            default:
                string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
                string? found = new[] { "tokenizer.bin" }.Select(n => System.IO.Path.Combine(dir, n)).FirstOrDefault(File.Exists)
                    ?? Directory.GetFiles(dir, "tok*.bin").Order().FirstOrDefault();
                if (found == null) throw new ModelFormatException($"{path}: no tokenizer.bin beside the llama2.c checkpoint (give one with --tokenizer)");
                return Llama2cTokenizer.Load(found, config.VocabSize);
        }
    }

    public void Dispose() => Model.Dispose();
}
