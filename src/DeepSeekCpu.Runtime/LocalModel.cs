using DeepSeekCpu.Formats;
using DeepSeekCpu.Hub;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu;

/// <summary>
/// A model and its tokenizer loaded from one path: a Hugging Face folder (config.json, safetensors, tokenizer.json),
/// a .gguf file (weights and vocabulary) or a llama2.c .bin (its tokenizer.bin beside it or given explicitly).
/// The entry point for applications, the CLI and the server. The path may also be a Hugging Face repo id
/// (org/repo[@rev][:QUANT]): it is resolved through the Hugging Face cache (DeepSeekCpu.Hub.ModelLocator), downloading
/// what is missing unless HF_HUB_OFFLINE is set.
/// </summary>
public sealed partial class LocalModel : IDisposable
{
    /// <summary>The model graph: <see cref="ILanguageModel.Info"/> describes it, a <see cref="Generation.ChatEngine"/> runs it.</summary>
    public ILanguageModel Model { get; }
    /// <summary>The model's tokenizer, with its chat template when it has one.</summary>
    public ITokenizer Tokenizer { get; }
    internal ModelFormat Format { get; }
    /// <summary>What was loaded: the path given, or the cached snapshot a repo id resolved to.</summary>
    public string Path { get; }

    private LocalModel(string path, ILanguageModel model, ITokenizer tokenizer, ModelFormat format)
    {
        Path = path; Model = model; Tokenizer = tokenizer; Format = format;
    }

    /// <summary>
    /// Loads a model and its tokenizer (from <paramref name="tokenizerPath"/> when given: a folder, tokenizer.json or
    /// llama2.c tokenizer.bin). <paramref name="options"/>: memory mode, threads, conversion of matrices at load.
    /// </summary>
    /// <param name="progress">Told how far building the graph has come (matrices converted and re-laid-out, in bytes of
    /// the stored weights), and once more when the model is ready; a front end draws it (the engine draws nothing).</param>
    public static LocalModel Load(string path, string? tokenizerPath = null, LoadOptions? options = null, IProgress<LoadProgress>? progress = null)
    {
        path = ModelLocator.Resolve(path);   // a Hugging Face repo id: the cached snapshot, fetched first if needed
        options ??= LoadOptions.Default;
        var (config, weights, format, gguf) = ModelLoader.OpenWeights(path, options.Memory);
        try
        {
            var tokenizer = LoadTokenizer(path, format, config, gguf, tokenizerPath);
            // A tokenizer with ids the model has no embedding row for would fail at the first such token (a 500 in the
            // server); a smaller one is usual (embeddings padded to a multiple of 64 or 128).
            if (tokenizer.VocabSize > config.VocabSize)
                throw new ModelFormatException($"{tokenizerPath ?? path}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {config.VocabSize} (a tokenizer of another model?)");
            if (progress != null) options = options with { MatrixTransform = Reporting(options.MatrixTransform, path, weights.TotalBytes, progress) };
            var model = ModelLoader.Build(config, weights, options);
            progress?.Report(new LoadProgress(path, weights.TotalBytes, weights.TotalBytes, Finished: true));
            return new LocalModel(path, model, tokenizer, format);
        }
        catch { weights.Dispose(); throw; }
    }

    /// <summary>
    /// <paramref name="inner"/> (or no conversion) with each matrix's start reported: the bytes of the matrices before
    /// it are then converted and re-laid-out. Matrices may be built on the worker pool, so the count is atomic.
    /// </summary>
    internal static Func<WeightMatrix, WeightMatrix> Reporting(Func<WeightMatrix, WeightMatrix>? inner, string model, long totalBytes, IProgress<LoadProgress> progress)
    {
        long done = 0;
        return m =>
        {
            long before = Interlocked.Add(ref done, m.ByteLength) - m.ByteLength;
            progress.Report(new LoadProgress(model, Math.Min(before, totalBytes), totalBytes, Finished: false));
            return inner?.Invoke(m) ?? m;
        };
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

    /// <summary>Frees the model (its weights' memory maps and copies).</summary>
    public void Dispose() => Model.Dispose();
}

/// <summary>Where a load stands: bytes of the stored weights built into the graph so far, of the total.</summary>
/// <param name="Model">The path being loaded.</param>
/// <param name="BytesDone">Bytes of stored weights built so far.</param>
/// <param name="BytesTotal">Bytes of all stored weights.</param>
/// <param name="Finished">True once, when the model is ready.</param>
public readonly record struct LoadProgress(string Model, long BytesDone, long BytesTotal, bool Finished);
