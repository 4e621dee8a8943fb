using DeepSeekCpu.Models.DeepSeek.V4;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models;

internal static partial class ModelLoader
{
    /// <summary>DeepSeek-V4 (<c>deepseek_v4</c>) on the CPU engine; other graphs (TorchSharp) do not implement it.</summary>
    private static ILanguageModel BuildV4(ModelConfig config, ModelWeights weights, LoadOptions options)
    {
        if (options.Graph != null)
            throw ModelFormatException.In(weights.Source, "DeepSeek-V4 (deepseek_v4) is not supported by this backend yet: it runs on the CPU engine");
        Threading.WorkerPool.Configure(options.Threads);
        weights.MatrixTransform = options.MatrixTransform;
        weights.Repack = options.Repack;
        return new DeepSeekV4Model(weights, config) { CacheType = options.CacheType };
    }
}
