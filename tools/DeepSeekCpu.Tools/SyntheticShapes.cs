using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tools;

/// <summary>Published shapes (DEEPSEEK.md's table; the models' config.json files).</summary>
public sealed record ModelShape(
    string Name, string Arch, int Vocab, int Hidden, int Layers, int Heads, int KvHeads, int Ffn, double RopeTheta,
    bool Tied = false, int Context = 131072,
    // deepseek2 only
    int? QLoraRank = null, int KvLoraRank = 0, int Nope = 0, int Rope = 0, int VDim = 0,
    int Experts = 0, int SharedExperts = 0, int ExpertFfn = 0, int TopK = 0, int LeadingDense = 0)
{
    /// <summary>
    /// The shape as the engine's config, for its GGUF metadata: RMS eps 1e-6; DeepSeek routing as V2-Lite's (softmax,
    /// greedy top-k over all experts, no normalisation, scale 1).
    /// </summary>
    public ModelConfig ToConfig() => new()
    {
        Architecture = Arch switch { "llama" => Architecture.Llama, "qwen2" => Architecture.Qwen2, _ => Architecture.DeepSeekV2 },
        ModelType = Arch,
        VocabSize = Vocab, HiddenSize = Hidden, IntermediateSize = Ffn, NumLayers = Layers,
        NumHeads = Heads, NumKvHeads = KvHeads, HeadDim = Arch == "deepseek2" ? Nope + Rope : Hidden / Heads,
        RmsNormEps = 1e-6f, RopeTheta = RopeTheta, MaxPositionEmbeddings = Context, TieWordEmbeddings = Tied,
        QLoraRank = QLoraRank, KvLoraRank = KvLoraRank, QkNopeHeadDim = Nope, QkRopeHeadDim = Rope, VHeadDim = VDim,
        NRoutedExperts = Experts, NSharedExperts = SharedExperts, MoeIntermediateSize = ExpertFfn, NumExpertsPerTok = TopK,
        FirstKDenseReplace = LeadingDense,
    };
}

public static class SyntheticShapes
{
    public static readonly ModelShape[] All =
    [
        // A tiny model with the R1-Distill-Qwen vocabulary, for end-to-end checks of the tokenizer/chat plumbing.
        new("tiny-qwen2-r1", "qwen2", 151936, 64, 2, 4, 2, 128, 10000, Context: 4096),
        new("qwen2-1.5b", "qwen2", 151936, 1536, 28, 12, 2, 8960, 10000),
        new("qwen2-7b", "qwen2", 152064, 3584, 28, 28, 4, 18944, 10000),
        new("qwen2-14b", "qwen2", 152064, 5120, 48, 40, 8, 13824, 1000000),
        new("llama-8b", "llama", 128256, 4096, 32, 32, 8, 14336, 500000),
        // DeepSeek-V2-Lite: 27 layers (first dense), MLA without q LoRA, 64 routed x 1408 top 6 + 2 shared.
        new("v2-lite", "deepseek2", 102400, 2048, 27, 16, 16, 10944, 10000, Context: 163840,
            QLoraRank: null, KvLoraRank: 512, Nope: 128, Rope: 64, VDim: 128,
            Experts: 64, SharedExperts: 2, ExpertFfn: 1408, TopK: 6, LeadingDense: 1),
    ];

    public static IEnumerable<string> Names => All.Select(s => s.Name);

    public static ModelShape Get(string name) =>
        All.FirstOrDefault(s => s.Name == name) ?? throw new ArgumentException($"--shape '{name}' is unknown (expected {string.Join(", ", Names)})");

    public static DType ParseType(string s) => s.ToLowerInvariant() switch
    {
        "f32" => DType.F32, "f16" => DType.F16, "bf16" => DType.BF16,
        "q8_0" => DType.Q8_0, "q4_0" => DType.Q4_0, "q4_1" => DType.Q4_1, "q5_0" => DType.Q5_0,
        "q4_k" => DType.Q4_K, "q5_k" => DType.Q5_K, "q6_k" => DType.Q6_K,
        _ => throw new ArgumentException($"--type '{s}' is unknown (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q4_k, q5_k, q6_k)"),
    };
}
