using DeepSeekCpu.Formats;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Models.Llama;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models;

/// <summary>Which container a model came from.</summary>
internal enum ModelFormat { HuggingFace, Gguf, Llama2c }

/// <summary>
/// Opens a model from a Hugging Face folder (config.json + safetensors), a .gguf file or a llama2.c .bin, and builds
/// the graph its architecture needs. Tokenizers are loaded separately (DeepSeekCpu.Tokenizers).
/// </summary>
internal static partial class ModelLoader
{
    public static ModelFormat Detect(string path)
    {
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, "config.json"))) return ModelFormat.HuggingFace;
            throw new ModelFormatException($"{path}: folder has no config.json (expected a Hugging Face model folder)");
        }
        if (!File.Exists(path)) throw new ModelFormatException($"{path}: no such file or folder");
        if (GgufFile.HasMagic(path)) return ModelFormat.Gguf;
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException($"{path}: not a GGUF file (expected magic \"GGUF\")");
        return ModelFormat.Llama2c;
    }

    /// <summary>Reads config and maps weights without building the graph (for `quantize`, and before the tokenizer).</summary>
    public static (ModelConfig config, ModelWeights weights, ModelFormat format, GgufFile? gguf) OpenWeights(string path, WeightMemory memory = WeightMemory.Mmap)
    {
        var format = Detect(path);
        switch (format)
        {
            case ModelFormat.HuggingFace:
            {
                var config = ModelConfig.FromHfJson(Path.Combine(path, "config.json"));
                return (config, ModelWeights.OpenSafetensorsFolder(path, memory), format, null);
            }
            case ModelFormat.Gguf:
            {
                // one file, or the shards of a split model (the first holds the metadata; GgufShards)
                var shards = GgufShards.Open(path, memory);
                var g = shards[0];
                try
                {
                    var all = shards.Count > 1 ? GgufShards.Tensors(shards) : null;
                    string arch = g.GetString("general.architecture") ?? "";
                    ModelConfig.CheckGgufMetadata(g);
                    var (config, tensors) = arch switch
                    {
                        "llama" or "qwen2" or "qwen3" => LlamaGguf.FromGguf(g, all),
                        "deepseek2" or DeepSeekGguf.V32Architecture => DeepSeekGguf.FromGguf(g, all),
                        DeepSeek.V4.V4Gguf.Architecture => DeepSeek.V4.V4Gguf.FromGguf(g, all),
                        _ => throw ModelFormatException.In(path, $"general.architecture \"{arch}\" is not supported (expected llama, qwen2, qwen3, deepseek2, deepseek32 or deepseek4)"),
                    };
                    config.Validate(path);
                    return (config, new ModelWeights(path, tensors, [.. shards]), format, g);
                }
                catch { foreach (var s in shards) s.Dispose(); throw; }
            }
            default:
            {
                var c = Llama2cCheckpoint.Open(path, memory);
                try { return (ModelConfig.FromLlama2c(c.Header, path), new ModelWeights(path, new(c.Tensors), [c]), format, null); }
                catch { c.Dispose(); throw; }
            }
        }
    }

    /// <summary>
    /// Builds the graph for an already opened set of weights: sizes the worker pool and sets the matrix conversion
    /// from <paramref name="options"/> first (building may convert and re-lay-out weights on the pool).
    /// </summary>
    public static ILanguageModel Build(ModelConfig config, ModelWeights weights, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        if (config.V4 != null) return BuildV4(config, weights, options);
        if (options.Graph is { } graph)
        {
            // other graphs (the TorchSharp backend) compute MLA without V3.2's indexer: refuse rather than attend densely
            if (config.HasIndexer)
                throw ModelFormatException.In(weights.Source, $"{config.ModelType} is not supported yet by this backend: index_topk (DeepSeek Sparse Attention runs on the CPU engine)");
            return graph(config, weights);
        }
        WorkerPool.Configure(options.Threads);
        weights.MatrixTransform = options.MatrixTransform;
        weights.Repack = options.Repack;
        return config.Architecture switch
        {
            Architecture.Llama or Architecture.Qwen2 or Architecture.Qwen3 => new LlamaModel(config, weights) { CacheType = options.CacheType },
            Architecture.DeepSeekV2 or Architecture.DeepSeekV3 or Architecture.DeepSeekV32 => new DeepSeekModel(weights, config) { CacheType = options.CacheType },
            _ => throw new ModelFormatException($"{weights.Source}: architecture {config.Architecture} is not supported"),
        };
    }

    /// <summary>Opens and builds a model (the tokenizer too: LocalModel.Load in DeepSeekCpu.Runtime).</summary>
    public static ILanguageModel Load(string path, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        var (config, weights, _, _) = OpenWeights(path, options.Memory);
        try { return Build(config, weights, options); }
        catch { weights.Dispose(); throw; }
    }
}
