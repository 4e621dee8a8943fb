using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tools;

/// <summary>Published shapes (DEEPSEEK.md's table; the models' config.json files).</summary>
public sealed record ModelShape(
    string Name, string Arch, int Vocab, int Hidden, int Layers, int Heads, int KvHeads, int Ffn, double RopeTheta,
    bool Tied = false, int Context = 131072,
    // deepseek2 only
    int? QLoraRank = null, int KvLoraRank = 0, int Nope = 0, int Rope = 0, int VDim = 0,
    int Experts = 0, int SharedExperts = 0, int ExpertFfn = 0, int TopK = 0, int LeadingDense = 0,
    // DeepSeek-V3/R1 routing: sigmoid scores with a selection bias, top groups then top experts, normalised, scaled
    int Groups = 1, int TopGroups = 1, double RoutedScaling = 0)
{
    /// <summary>V3/R1 routing (noaux_tc) rather than V2-Lite's greedy softmax.</summary>
    public bool V3Routing => RoutedScaling > 0;

    /// <summary>
    /// The shape as the engine's config, for its GGUF metadata: RMS eps 1e-6; DeepSeek routing as V2-Lite's (softmax,
    /// greedy top-k over all experts, no normalisation, scale 1), or V3/R1's (<see cref="V3Routing"/>).
    /// </summary>
    internal ModelConfig ToConfig() => new()
    {
        Architecture = Arch switch { "llama" => Architecture.Llama, "qwen2" => Architecture.Qwen2, _ => V3Routing ? Architecture.DeepSeekV3 : Architecture.DeepSeekV2 },
        ModelType = Arch,
        VocabSize = Vocab, HiddenSize = Hidden, IntermediateSize = Ffn, NumLayers = Layers,
        NumHeads = Heads, NumKvHeads = KvHeads, HeadDim = Arch == "deepseek2" ? Nope + Rope : Hidden / Heads,
        RmsNormEps = 1e-6f, RopeTheta = RopeTheta, MaxPositionEmbeddings = Context, TieWordEmbeddings = Tied,
        QLoraRank = QLoraRank, KvLoraRank = KvLoraRank, QkNopeHeadDim = Nope, QkRopeHeadDim = Rope, VHeadDim = VDim,
        NRoutedExperts = Experts, NSharedExperts = SharedExperts, MoeIntermediateSize = ExpertFfn, NumExpertsPerTok = TopK,
        FirstKDenseReplace = LeadingDense,
        ScoringFunc = V3Routing ? "sigmoid" : "softmax", TopkMethod = V3Routing ? "noaux_tc" : "greedy",
        NGroup = Groups, TopkGroup = TopGroups, NormTopkProb = V3Routing, RoutedScalingFactor = V3Routing ? RoutedScaling : 1,
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
        // DeepSeek-V3 / R1 (671B): 61 layers (first 3 dense, ffn 18432), 128 heads, MLA q LoRA 1536, kv 512 + rope 64,
        // 256 routed x 2048 top 8 in 8 groups (top 4) + 1 shared, sigmoid routing scaled 2.5. Use --layers to reduce.
        new("r1", "deepseek2", 129280, 7168, 61, 128, 128, 18432, 10000, Context: 163840,
            QLoraRank: 1536, KvLoraRank: 512, Nope: 128, Rope: 64, VDim: 128,
            Experts: 256, SharedExperts: 1, ExpertFfn: 2048, TopK: 8, LeadingDense: 3, Groups: 8, TopGroups: 4, RoutedScaling: 2.5),
    ];

    public static IEnumerable<string> Names => All.Select(s => s.Name);

    public static ModelShape Get(string name) =>
        All.FirstOrDefault(s => s.Name == name) ?? throw new ArgumentException($"--shape '{name}' is unknown (expected {string.Join(", ", Names)})");

    public static DType ParseType(string s) => s.ToLowerInvariant() switch
    {
        "f32" => DType.F32, "f16" => DType.F16, "bf16" => DType.BF16,
        "q8_0" => DType.Q8_0, "q4_0" => DType.Q4_0, "q4_1" => DType.Q4_1, "q5_0" => DType.Q5_0,
        "q4_k" => DType.Q4_K, "q5_k" => DType.Q5_K, "q6_k" => DType.Q6_K,
        "q5_1" => DType.Q5_1, "q2_k" => DType.Q2_K, "q3_k" => DType.Q3_K, "iq4_nl" => DType.IQ4_NL, "iq4_xs" => DType.IQ4_XS,
        "iq2_xxs" => DType.IQ2_XXS, "iq2_xs" => DType.IQ2_XS, "iq2_s" => DType.IQ2_S,
        "iq3_xxs" => DType.IQ3_XXS, "iq3_s" => DType.IQ3_S, "iq1_s" => DType.IQ1_S, "iq1_m" => DType.IQ1_M,
        _ => throw new ArgumentException($"--type '{s}' is unknown (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q2_k, q3_k, iq4_nl, iq4_xs; with --mix also iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m)"),
    };
}

/// <summary>
/// The tensor types of a dynamic R1 GGUF (Unsloth's UD-IQ1_S, UD-IQ2_XXS, Q2_K_XL files): routed experts in a 1.5-2.5
/// bit type, everything else in 4-6 bits: attention and the leading dense FFNs Q4_K, shared experts Q6_K, token
/// embedding Q4_K, output Q6_K (the layout of those files, simplified: they also raise a few layers' down projections).
/// </summary>
public sealed record TensorMix(DType Experts, DType Attention = DType.Q4_K, DType Dense = DType.Q4_K, DType Shared = DType.Q6_K,
    DType Embedding = DType.Q4_K, DType Output = DType.Q6_K)
{
    public static TensorMix Uniform(DType t) => new(t, t, t, t, t, t);
}
