using System.Text.Json;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models.DeepSeek;

namespace DeepSeekCpu.Models;

/// <summary>
/// The model graphs this engine knows. DeepSeekV32 is V3 plus DeepSeek Sparse Attention (config "deepseek_v32": a
/// lightning indexer per layer); DeepSeekV4 ("deepseek_v4", <see cref="ModelConfig.V4"/>) has its own graph (Models/DeepSeek/V4).
/// </summary>
internal enum Architecture { Llama, Qwen2, DeepSeekV2, DeepSeekV3, Qwen3, DeepSeekV32, DeepSeekV4 }

/// <summary>
/// Rope scaling (HF config "rope_scaling"). Type "llama3" (Llama 3.1: factor, low/high_freq_factor,
/// original_max_position_embeddings) or "yarn" (DeepSeek: factor, original_max_position_embeddings, beta_fast,
/// beta_slow, mscale, mscale_all_dim). See DEEPSEEK.md. <see cref="FreqFactors"/>: per-frequency divisors that replace
/// the llama3 formula (GGUF's rope_freqs tensor, which is what llama.cpp applies). <see cref="AttentionFactor"/>: yarn's
/// "attention_factor" (HF transformers _compute_yarn_parameters), the cos/sin multiplier that replaces the mscale
/// formula when given. Qwen3 configs' "attn_factor" is NOT it: transformers and llama.cpp ignore that key (DEEPSEEK.md).
/// </summary>
internal sealed record RopeScaling(
    string Type,
    double Factor,
    int OriginalMaxPositionEmbeddings,
    double LowFreqFactor = 1,
    double HighFreqFactor = 4,
    double BetaFast = 32,
    double BetaSlow = 1,
    double Mscale = 1,
    double MscaleAllDim = 0,
    double[]? FreqFactors = null,
    double? AttentionFactor = null);

/// <summary>
/// Everything about a model's shape that changes the computation, from HF config.json, GGUF metadata or a
/// llama2.c header. Field names follow HF config.json; grouped as DeepSeek's ModelArgs groups them.
/// </summary>
internal sealed record ModelConfig
{
    public required Architecture Architecture { get; init; }
    public string ModelType { get; init; } = "";
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    public int HeadDim { get; init; }
    public float RmsNormEps { get; init; } = 1e-6f;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections have biases (Qwen2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Per-head RMSNorm of q and k (head_dim wide) before RoPE: Qwen3's q_norm / k_norm.</summary>
    public bool QkNorm => Architecture == Architecture.Qwen3;
    /// <summary>
    /// RoPE rotates interleaved pairs (2i, 2i+1) rather than halves. True for llama2.c checkpoints and GGUF llama
    /// (llama.cpp's converter permutes Q/K rows for it); false for HF weights of Qwen2/Llama.
    /// </summary>
    public bool RopeInterleaved { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];

    // mla
    public int? QLoraRank { get; init; }
    public int KvLoraRank { get; init; }
    public int QkNopeHeadDim { get; init; }
    public int QkRopeHeadDim { get; init; }
    public int VHeadDim { get; init; }

    // moe
    public int NRoutedExperts { get; init; }
    public int NSharedExperts { get; init; }
    public int MoeIntermediateSize { get; init; }
    public int NumExpertsPerTok { get; init; }
    public int NGroup { get; init; } = 1;
    public int TopkGroup { get; init; } = 1;
    public string TopkMethod { get; init; } = "greedy";
    public string ScoringFunc { get; init; } = "softmax";
    public bool NormTopkProb { get; init; }
    public double RoutedScalingFactor { get; init; } = 1;
    public int FirstKDenseReplace { get; init; }
    public int MoeLayerFreq { get; init; } = 1;
    /// <summary>Multi-token-prediction layers stored after the main layers (R1/V3: 1); not part of the main model.</summary>
    public int NumNextnPredictLayers { get; init; }

    // dsa: DeepSeek Sparse Attention (V3.2 inference/model.py ModelArgs index_n_heads / index_head_dim / index_topk)
    /// <summary>Lightning-indexer heads (V3.2: 64); 0 when the model has no indexer.</summary>
    public int IndexNHeads { get; init; }
    /// <summary>Lightning-indexer head width (V3.2: 128; its first qk_rope_head_dim values carry RoPE).</summary>
    public int IndexHeadDim { get; init; }
    /// <summary>Cached tokens each query attends to (V3.2: 2048); every token when the context is shorter.</summary>
    public int IndexTopk { get; init; }
    /// <summary>True when every MLA layer has a lightning indexer (V3.2).</summary>
    public bool HasIndexer => IndexTopk > 0;

    /// <summary>DeepSeek-V4's own fields (null for every other model).</summary>
    public DeepSeekV4Config? V4 { get; init; }

    // quantization
    /// <summary>
    /// quantization_config.scale_fmt of an FP8 checkpoint: null (V3/R1) or "ue8m0" (V3.1). Both store weight_scale_inv
    /// as float32 [ceil(out/128), ceil(in/128)]; ue8m0 only means the values are powers of two (DeepSeek rounds its
    /// activation scales the same way in deployment, which an exact float32 engine does not imitate).
    /// </summary>
    public string? Fp8ScaleFormat { get; init; }

    public bool IsMla => Architecture is Architecture.DeepSeekV2 or Architecture.DeepSeekV3 or Architecture.DeepSeekV32;

    /// <summary>True when layer <paramref name="layer"/> uses MoE rather than a dense MLP (HF modeling_deepseek.py).</summary>
    public bool IsMoeLayer(int layer) =>
        NRoutedExperts > 0 && layer >= FirstKDenseReplace && layer % Math.Max(1, MoeLayerFreq) == 0;

    /// <summary>Values cached per token per layer: latent + shared rope key (+ V3.2's index key) for MLA, K and V heads otherwise.</summary>
    public int KvValuesPerTokenPerLayer => IsMla ? KvLoraRank + QkRopeHeadDim + IndexHeadDim : 2 * NumKvHeads * HeadDim;

    /// <summary>Reads a Hugging Face config.json.</summary>
    public static ModelConfig FromHfJson(string path)
    {
        try { return ReadHfJson(path); }
        catch (Exception e) when (JsonFile.IsReadError(e)) { throw new ModelFormatException(JsonFile.ReadErrorText(path, e)); }
    }

    private static ModelConfig ReadHfJson(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelFormatException($"{path}: not valid JSON ({e.Message.Split('\n')[0]})"); }
        using var _ = doc;
        var j = new JsonFields(doc.RootElement, path);
        string modelType = j.Str("model_type") ?? throw new ModelFormatException($"{path}: field \"model_type\" is missing");
        var arch = modelType switch
        {
            "llama" => Architecture.Llama,
            "qwen2" => Architecture.Qwen2,
            "qwen3" => Architecture.Qwen3,
            "deepseek_v2" => Architecture.DeepSeekV2,
            "deepseek_v3" => Architecture.DeepSeekV3,
            "deepseek_v32" => Architecture.DeepSeekV32,
            "deepseek_v4" => Architecture.DeepSeekV4,
            _ => throw new ModelFormatException($"{path}: model_type \"{modelType}\" is not supported (expected llama, qwen2, qwen3, deepseek_v2, deepseek_v3, deepseek_v32 or deepseek_v4)"),
        };
        int hidden = j.ReqInt("hidden_size"), heads = j.ReqInt("num_attention_heads");
        RopeScaling? scaling = null;
        if (doc.RootElement.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            var r = new JsonFields(rs, path + " rope_scaling");
            string type = r.Str("rope_type") ?? r.Str("type") ?? throw new ModelFormatException($"{path}: rope_scaling has no \"type\"");
            scaling = new RopeScaling(type, r.Dbl("factor") ?? 1,
                r.Int("original_max_position_embeddings") ?? 4096,
                LowFreqFactor: r.Dbl("low_freq_factor") ?? 1, HighFreqFactor: r.Dbl("high_freq_factor") ?? 4,
                BetaFast: r.Dbl("beta_fast") ?? 32, BetaSlow: r.Dbl("beta_slow") ?? 1,
                Mscale: r.Dbl("mscale") ?? 1, MscaleAllDim: r.Dbl("mscale_all_dim") ?? 0,
                AttentionFactor: r.Dbl("attention_factor"));
            if (type is not ("llama3" or "yarn" or "default" or "linear"))
                throw new ModelFormatException($"{path}: rope_scaling type \"{type}\" is not supported (expected llama3 or yarn)");
            if (type == "default") scaling = null;
        }
        bool isDs = arch is Architecture.DeepSeekV2 or Architecture.DeepSeekV3 or Architecture.DeepSeekV32 or Architecture.DeepSeekV4;
        string? scaleFmt = null;
        if (doc.RootElement.TryGetProperty("quantization_config", out var qc) && qc.ValueKind == JsonValueKind.Object)
        {
            var q = new JsonFields(qc, path + " quantization_config");
            if (q.Str("quant_method") == "fp8")
            {
                // DeepSeek's FP8 layout (DEEPSEEK.md "FP8 checkpoints"): 128x128 blocks, float32 scales
                if (qc.TryGetProperty("weight_block_size", out var bs) && bs.ValueKind != JsonValueKind.Null
                    && !(bs.ValueKind == JsonValueKind.Array && bs.GetArrayLength() == 2 && bs.EnumerateArray().All(v => v.TryGetInt32(out int b) && b == 128)))
                    throw new ModelFormatException($"{path}: quantization_config.weight_block_size must be [128, 128] (DeepSeek's FP8 blocks), got {bs.GetRawText()}");
                scaleFmt = q.Str("scale_fmt");
                if (scaleFmt is not (null or "ue8m0"))
                    throw new ModelFormatException($"{path}: quantization_config.scale_fmt \"{scaleFmt}\" is not supported (expected ue8m0 or none)");
            }
        }
        bool hasIndexer = arch is Architecture.DeepSeekV32 or Architecture.DeepSeekV4;
        return new ModelConfig
        {
            Architecture = arch,
            ModelType = modelType,
            VocabSize = j.ReqInt("vocab_size"),
            HiddenSize = hidden,
            // V4 has no dense layers and so no intermediate_size: its MLPs are moe_intermediate_size wide
            IntermediateSize = arch == Architecture.DeepSeekV4 ? j.Int("intermediate_size") ?? j.ReqInt("moe_intermediate_size") : j.ReqInt("intermediate_size"),
            NumLayers = j.ReqInt("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = j.Int("num_key_value_heads") ?? heads,
            HeadDim = j.Int("head_dim") ?? hidden / heads,
            RmsNormEps = (float)(j.Dbl("rms_norm_eps") ?? 1e-6),
            RopeTheta = j.Dbl("rope_theta") ?? 10000,
            RopeScaling = scaling,
            MaxPositionEmbeddings = j.Int("max_position_embeddings") ?? 4096,
            TieWordEmbeddings = j.Bool("tie_word_embeddings") ?? false,
            AttentionBias = arch == Architecture.Qwen2 || (j.Bool("attention_bias") ?? false),
            // DeepSeek's RoPE rotates interleaved pairs on HF weights (HF's modeling_deepseek.py de-interleaves q_pe/k_pe
            // at run time, then rotate_half: the same computation); tests/fixtures/deepseek-v3-tiny confirms it.
            RopeInterleaved = isDs,
            BosTokenId = j.Int("bos_token_id"),
            EosTokenIds = j.IntOrArray("eos_token_id"),
            QLoraRank = isDs ? j.Int("q_lora_rank") : null,
            KvLoraRank = j.Int("kv_lora_rank") ?? 0,
            QkNopeHeadDim = j.Int("qk_nope_head_dim") ?? 0,
            QkRopeHeadDim = j.Int("qk_rope_head_dim") ?? 0,
            VHeadDim = j.Int("v_head_dim") ?? 0,
            NRoutedExperts = j.Int("n_routed_experts") ?? 0,
            NSharedExperts = j.Int("n_shared_experts") ?? 0,
            MoeIntermediateSize = j.Int("moe_intermediate_size") ?? 0,
            NumExpertsPerTok = j.Int("num_experts_per_tok") ?? 0,
            NGroup = j.Int("n_group") ?? 1,
            TopkGroup = j.Int("topk_group") ?? 1,
            TopkMethod = j.Str("topk_method") ?? "greedy",
            ScoringFunc = j.Str("scoring_func") ?? "softmax",
            NormTopkProb = j.Bool("norm_topk_prob") ?? false,
            RoutedScalingFactor = j.Dbl("routed_scaling_factor") ?? 1,
            FirstKDenseReplace = j.Int("first_k_dense_replace") ?? 0,
            MoeLayerFreq = j.Int("moe_layer_freq") ?? 1,
            NumNextnPredictLayers = j.Int("num_nextn_predict_layers") ?? 0,
            Fp8ScaleFormat = scaleFmt,
            IndexNHeads = hasIndexer ? j.ReqInt("index_n_heads") : 0,
            IndexHeadDim = hasIndexer ? j.ReqInt("index_head_dim") : 0,
            IndexTopk = hasIndexer ? j.ReqInt("index_topk") : 0,
            V4 = arch == Architecture.DeepSeekV4 ? DeepSeekV4Config.Read(j, doc.RootElement, path) : null,
        }.Validate(path);
    }

    /// <summary>
    /// A llama2.c checkpoint's config (run.c): Llama with RoPE on interleaved pairs, θ = 10000, RMS eps 1e-5, the
    /// SentencePiece ids BOS 1 and EOS 2.
    /// </summary>
    public static ModelConfig FromLlama2c(Llama2cHeader h, string source = "llama2.c checkpoint") => new ModelConfig
    {
        Architecture = Architecture.Llama,
        ModelType = "llama2.c",
        VocabSize = h.VocabSize,
        HiddenSize = h.Dim,
        IntermediateSize = h.HiddenDim,
        NumLayers = h.Layers,
        NumHeads = h.Heads,
        NumKvHeads = h.KvHeads,
        HeadDim = h.Dim / h.Heads,
        RmsNormEps = 1e-5f,
        RopeTheta = 10000,
        MaxPositionEmbeddings = h.SeqLen,
        TieWordEmbeddings = h.SharedClassifier,
        RopeInterleaved = true,
        BosTokenId = 1,
        EosTokenIds = [2],
    }.Validate(source);

    // Bounds on the sizes a model file declares. They are far above any released model (DeepSeek-V3: 61 layers,
    // hidden 7168, 128 heads, vocab 129280; Llama 3.1 405B: 126 layers, hidden 16384) and low enough that the
    // arrays sized by them (per-layer tables, logits, KV caches) cannot fail on their own size before the weights are
    // checked.
    internal const int MaxLayers = 1024, MaxHidden = 1 << 17, MaxHeads = 1024, MaxVocab = 1 << 24, MaxIntermediate = 1 << 20;

    /// <summary>
    /// Checks the sizes every model builder divides by or allocates from: positive dimensions, key/value heads that
    /// divide the query heads, bounded layer counts and vocabulary. Each loader calls it, so a file with head_count 0
    /// or block_count 2^31-1 fails here with a line naming the file and field (HF config names) instead of a
    /// DivideByZeroException deep in a model. Returns this config.
    /// </summary>
    public ModelConfig Validate(string source)
    {
        void Range(string field, long value, long min, long max)
        {
            if (value < min || value > max) throw ModelFormatException.In(source, $"{field} = {value} is out of range (expected {min}..{max})");
        }
        Range("vocab_size", VocabSize, 1, MaxVocab);
        Range("hidden_size", HiddenSize, 1, MaxHidden);
        Range("intermediate_size", IntermediateSize, 1, MaxIntermediate);
        Range("num_hidden_layers", NumLayers, 1, MaxLayers);
        Range("num_attention_heads", NumHeads, 1, MaxHeads);
        Range("max_position_embeddings", MaxPositionEmbeddings, 1, int.MaxValue);
        if (IsMla)
        {
            Range("kv_lora_rank", KvLoraRank, 1, MaxHidden);
            Range("qk_rope_head_dim", QkRopeHeadDim, 2, 4096);
            Range("qk_nope_head_dim", QkNopeHeadDim, 0, 4096);
            Range("v_head_dim", VHeadDim, 1, 4096);
            if (QLoraRank is int q) Range("q_lora_rank", q, 1, MaxHidden);
        }
        if (HasIndexer)
        {
            // the indexer's queries come from the q latent, and its Hadamard rotation needs a power-of-two width
            if (QLoraRank is not > 0) throw ModelFormatException.In(source, "q_lora_rank is missing: the V3.2 indexer reads the q latent");
            Range("index_n_heads", IndexNHeads, 1, MaxHeads);
            Range("index_head_dim", IndexHeadDim, QkRopeHeadDim, 4096);
            if ((IndexHeadDim & (IndexHeadDim - 1)) != 0)
                throw ModelFormatException.In(source, $"index_head_dim = {IndexHeadDim} is not a power of two (the indexer's Hadamard rotation needs one)");
            Range("index_topk", IndexTopk, 1, int.MaxValue);
        }
        else
        {
            Range("num_key_value_heads", NumKvHeads, 1, NumHeads);
            if (NumHeads % NumKvHeads != 0)
                throw ModelFormatException.In(source, $"num_attention_heads = {NumHeads} is not a multiple of num_key_value_heads = {NumKvHeads}");
            Range("head_dim", HeadDim, 1, 4096);
        }
        Range("n_routed_experts", NRoutedExperts, 0, 1 << 16);
        if (NRoutedExperts > 0)
        {
            Range("num_experts_per_tok", NumExpertsPerTok, 1, NRoutedExperts);
            Range("moe_intermediate_size", MoeIntermediateSize, 1, MaxIntermediate);
            Range("n_group", NGroup, 1, NRoutedExperts);
        }
        return this;
    }

    /// <summary>
    /// Checks a GGUF file's integer metadata under "ARCH." before a builder reads it: the keys that size the model
    /// within the bounds of <see cref="Validate"/>, every other one within 0..2^31-1 (builders read them as int).
    /// </summary>
    public static void CheckGgufMetadata(GgufFile g)
    {
        if (g.GetString("general.architecture") is not { } arch) return;
        foreach (var (key, value) in g.Metadata)
        {
            if (!key.StartsWith(arch + ".", StringComparison.Ordinal) || value is not long v) continue;
            (long min, long max) = key[(arch.Length + 1)..] switch
            {
                "block_count" => (1, MaxLayers),
                "embedding_length" => (1, MaxHidden),
                "feed_forward_length" or "expert_feed_forward_length" => (1, MaxIntermediate),
                "attention.head_count" or "attention.head_count_kv" => (1, MaxHeads),
                "vocab_size" => (1, MaxVocab),
                "context_length" => (1, int.MaxValue),
                _ => (0, int.MaxValue),
            };
            if (v < min || v > max) throw ModelFormatException.In(g.Path, $"metadata {key} = {v} is out of range (expected {min}..{max})");
        }
    }

    /// <summary>Typed, error-reporting access to a JSON object's fields.</summary>
    internal readonly struct JsonFields(JsonElement e, string path)
    {
        private bool Has(string name, out JsonElement v)
        {
            if (e.ValueKind != JsonValueKind.Object) throw new ModelFormatException($"{path}: expected a JSON object at the top level");
            return e.TryGetProperty(name, out v) && v.ValueKind != JsonValueKind.Null;
        }
        public string? Str(string name) => Has(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Bad(name, "a string") : null;
        public int? Int(string name) => Has(name, out var v) ? v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(name, "an integer") : null;
        public double? Dbl(string name) => Has(name, out var v) ? v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) ? d : throw Bad(name, "a number") : null;
        public bool? Bool(string name) => Has(name, out var v) ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Bad(name, "true or false") } : null;
        public int ReqInt(string name) => Int(name) is int i && i > 0 ? i : throw Bad(name, "a positive integer");
        public int[] IntOrArray(string name)
        {
            if (!Has(name, out var v)) return [];
            if (v.ValueKind == JsonValueKind.Array)
            {
                var ids = new List<int>();
                foreach (var x in v.EnumerateArray())
                    ids.Add(x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int i) ? i : throw Bad(name, "an integer or an array of integers"));
                return [.. ids];
            }
            return [Int(name)!.Value];
        }
        private ModelFormatException Bad(string name, string what) => new($"{path}: field \"{name}\" must be {what}");
    }
}
