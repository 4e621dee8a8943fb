namespace DeepSeekCpu.Models;

/// <summary>
/// What an application may want to know about a loaded model (<see cref="ILanguageModel.Info"/>): its shape, its limits
/// and what it costs in memory. The full configuration and the weights stay inside the engine.
/// </summary>
/// <param name="Architecture">The graph that runs it: Llama, Qwen2, Qwen3, DeepSeekV2, DeepSeekV3, DeepSeekV32 or DeepSeekV4.</param>
/// <param name="VocabSize">Rows of the embedding: token ids below this are valid input.</param>
/// <param name="MaxContextLength">The longest sequence the model was made for (max_position_embeddings); a session is capped at it.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="HiddenSize">Width of the residual stream.</param>
/// <param name="Heads">Attention (query) heads.</param>
/// <param name="RoutedExperts">Routed experts of a mixture-of-experts model; 0 for a dense one.</param>
/// <param name="ExpertsPerToken">Routed experts each token uses; 0 for a dense model.</param>
/// <param name="Parameters">Stored weight values (FP8 block scales not counted).</param>
/// <param name="WeightBytes">Bytes of the weights as stored in the files (memory-mapped, or read into memory).</param>
/// <param name="ResidentBytes">Bytes of the copies made at load (quantized or re-laid-out matrices), beyond <paramref name="WeightBytes"/>.</param>
/// <param name="KvBytesPerToken">KV cache bytes per token of one sequence (all layers), as the cache stores them.</param>
/// <param name="WeightBytesPerToken">Weight bytes one decoded token reads (with MoE, only the chosen experts): decoding
/// runs at most at memory bandwidth / this many tokens per second.</param>
public sealed record ModelInfo(
    string Architecture, int VocabSize, int MaxContextLength, int Layers, int HiddenSize, int Heads,
    int RoutedExperts, int ExpertsPerToken, long Parameters, long WeightBytes, long ResidentBytes,
    long KvBytesPerToken, long WeightBytesPerToken)
{
    internal static ModelInfo Of(ILanguageModel model)
    {
        var c = model.Config;
        var w = model.Weights;
        return new ModelInfo(c.Architecture.ToString(), c.VocabSize, c.MaxPositionEmbeddings, c.NumLayers, c.HiddenSize, c.NumHeads,
            c.NRoutedExperts, c.NRoutedExperts > 0 ? c.NumExpertsPerTok : 0,
            w.Tensors.Values.Where(t => !t.Name.EndsWith("_scale_inv", StringComparison.Ordinal)).Sum(t => t.ElementCount),
            w.TotalBytes, w.ResidentBytes, model.KvBytesPerToken, model.WeightBytesPerToken);
    }
}
