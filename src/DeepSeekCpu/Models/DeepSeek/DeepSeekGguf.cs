using System.Text.RegularExpressions;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// llama.cpp's GGUF <c>deepseek2</c> architecture (DeepSeek-V2, V2-Lite, V3, R1) mapped onto Hugging Face names and a
/// <see cref="ModelConfig"/>. Sources: llama.cpp gguf-py/gguf/constants.py (tensor names), convert_hf_to_gguf.py
/// DeepseekV2Model (what the converter writes), src/models/deepseek2.cpp (how llama.cpp reads it back).
/// <list type="bullet">
/// <item>Experts are stacked: <c>blk.N.ffn_{gate,up,down}_exps</c> [E, rows, cols] become per-expert 2-D views
/// <c>mlp.experts.{e}.{gate,up,down}_proj.weight</c> into the same bytes.</item>
/// <item>kv_b: older files keep <c>attn_kv_b</c> ([heads*(nope+v), kvl], as HF); newer ones split it into
/// <c>attn_k_b</c> [heads, kvl, nope] (W_uk transposed per head) and <c>attn_v_b</c> [heads, v, kvl] (W_uv), passed on
/// as <c>self_attn.k_b_proj.weight</c> / <c>self_attn.v_b_proj.weight</c>, which <see cref="MLA"/> reads.</item>
/// <item>RoPE: the converter does not permute q/k for deepseek2 and llama.cpp rotates adjacent pairs
/// (LLAMA_ROPE_TYPE_NORM), so the layout is the same interleaved one as on HF weights.</item>
/// <item>block_count includes the MTP layers (nextn_predict_layers): their block is named as any other, and their own
/// tensors <c>blk.N.nextn.*</c> (MODEL_TENSOR.NEXTN_*) map to the HF names <see cref="Mtp"/> reads.</item>
/// <item>DeepSeek-V3.2 is llama.cpp's <c>deepseek32</c> (convert_hf_to_gguf DeepseekV32Model, src/models/deepseek32.cpp):
/// the deepseek2 keys and tensors under that name, plus <c>attention.indexer.{head_count,key_length,top_k}</c> and per
/// block <c>indexer.attn_q_b</c> (wq_b), <c>indexer.attn_k</c> (wk), <c>indexer.k_norm</c> (weight and bias) and
/// <c>indexer.proj</c> (weights_proj).</item>
/// </list>
/// </summary>
internal static partial class DeepSeekGguf
{
    /// <summary>llama.cpp's architecture name for DeepSeek-V3.2 (gguf-py constants.py MODEL_ARCH.DEEPSEEK32).</summary>
    public const string V32Architecture = "deepseek32";

    private static readonly Dictionary<string, string> BlockNames = new()
    {
        ["attn_norm.weight"] = "input_layernorm.weight",
        ["ffn_norm.weight"] = "post_attention_layernorm.weight",
        ["attn_q_a.weight"] = "self_attn.q_a_proj.weight",
        ["attn_q_a_norm.weight"] = "self_attn.q_a_layernorm.weight",
        ["attn_q_b.weight"] = "self_attn.q_b_proj.weight",
        ["attn_q.weight"] = "self_attn.q_proj.weight",
        ["attn_kv_a_mqa.weight"] = "self_attn.kv_a_proj_with_mqa.weight",
        ["attn_kv_a_norm.weight"] = "self_attn.kv_a_layernorm.weight",
        ["attn_kv_b.weight"] = "self_attn.kv_b_proj.weight",
        ["attn_k_b.weight"] = "self_attn.k_b_proj.weight",
        ["attn_v_b.weight"] = "self_attn.v_b_proj.weight",
        ["attn_output.weight"] = "self_attn.o_proj.weight",
        ["ffn_gate.weight"] = "mlp.gate_proj.weight",
        ["ffn_up.weight"] = "mlp.up_proj.weight",
        ["ffn_down.weight"] = "mlp.down_proj.weight",
        ["ffn_gate_inp.weight"] = "mlp.gate.weight",
        ["exp_probs_b.bias"] = "mlp.gate.e_score_correction_bias",
        ["ffn_gate_shexp.weight"] = "mlp.shared_experts.gate_proj.weight",
        ["ffn_up_shexp.weight"] = "mlp.shared_experts.up_proj.weight",
        ["ffn_down_shexp.weight"] = "mlp.shared_experts.down_proj.weight",
        ["indexer.attn_q_b.weight"] = "self_attn.indexer.wq_b.weight",
        ["indexer.attn_k.weight"] = "self_attn.indexer.wk.weight",
        ["indexer.k_norm.weight"] = "self_attn.indexer.k_norm.weight",
        ["indexer.k_norm.bias"] = "self_attn.indexer.k_norm.bias",
        ["indexer.proj.weight"] = "self_attn.indexer.weights_proj.weight",
        ["nextn.eh_proj.weight"] = "eh_proj.weight",
        ["nextn.enorm.weight"] = "enorm.weight",
        ["nextn.hnorm.weight"] = "hnorm.weight",
        ["nextn.embed_tokens.weight"] = "embed_tokens.weight",
        ["nextn.shared_head_norm.weight"] = "shared_head.norm.weight",
        ["nextn.shared_head_head.weight"] = "shared_head.head.weight",
    };

    private static readonly Dictionary<string, string> StackedExperts = new()
    {
        ["ffn_gate_exps.weight"] = "gate_proj.weight",
        ["ffn_up_exps.weight"] = "up_proj.weight",
        ["ffn_down_exps.weight"] = "down_proj.weight",
    };

    private static readonly Regex BlockTensor = new(@"^blk\.(\d+)\.(.+)$");

    /// <summary>The config and the tensors under HF names (views into <paramref name="f"/>'s mapping; keep it open).</summary>
    public static unsafe (ModelConfig, Dictionary<string, TensorView>) FromGguf(GgufFile f, IReadOnlyDictionary<string, TensorView>? shardTensors = null)
    {
        var fileTensors = shardTensors ?? f.Tensors;   // a split model's tensors are in all its shards (GgufShards)
        string arch = f.GetString("general.architecture") ?? throw ModelFormatException.In(f.Path, "metadata key general.architecture is missing");
        if (arch is not ("deepseek2" or V32Architecture)) throw ModelFormatException.In(f.Path, $"general.architecture is \"{arch}\", expected deepseek2 or {V32Architecture}");
        bool v32 = arch == V32Architecture;
        string K(string key) => $"{arch}.{key}";
        int Req(string key) => checked((int)f.RequireInt(K(key)));
        int Opt(string key, int dflt) => f.GetInt(K(key)) is long v ? checked((int)v) : dflt;

        // ---- tensors
        var tensors = new Dictionary<string, TensorView>();
        foreach (var (name, t) in fileTensors)
        {
            switch (name)
            {
                case "token_embd.weight": tensors["model.embed_tokens.weight"] = Rename(t, "model.embed_tokens.weight"); continue;
                case "output_norm.weight": tensors["model.norm.weight"] = Rename(t, "model.norm.weight"); continue;
                case "output.weight": tensors["lm_head.weight"] = Rename(t, "lm_head.weight"); continue;
            }
            var m = BlockTensor.Match(name);
            if (!m.Success) { tensors[name] = t; continue; }
            string layer = $"model.layers.{m.Groups[1].Value}.", rest = m.Groups[2].Value;
            if (BlockNames.TryGetValue(rest, out var hf)) tensors[layer + hf] = Rename(t, layer + hf);
            else if (StackedExperts.TryGetValue(rest, out var proj))
            {
                if (t.Rank != 3) throw ModelFormatException.In(f.Path, $"tensor {name} has shape {t.ShapeText}, expected [experts, rows, cols]");
                int experts = (int)t.Shape[0];
                long rows = t.Shape[1], cols = t.Shape[2];
                long bytes = t.Type.ByteCount(rows * cols);
                for (int e = 0; e < experts; e++)
                {
                    string hfName = $"{layer}mlp.experts.{e}.{proj}";
                    tensors[hfName] = new TensorView(hfName, t.Type, [rows, cols], t.Data + bytes * e, bytes, t.File);
                }
            }
            else if (rest == "ffn_gate_up_exps.weight")
                throw ModelFormatException.In(f.Path, $"tensor {name}: fused gate/up expert tensors are not supported (convert with separate ffn_gate_exps/ffn_up_exps)");
            else tensors[layer + "gguf." + rest] = Rename(t, layer + "gguf." + rest); // others: kept, unused
        }

        // ---- config
        int heads = Req("attention.head_count");
        int rope = Req("rope.dimension_count");
        // MLA-split files (attn_k_b/attn_v_b) describe heads as MQA over the latent (key_length = kvl + rope) and
        // give the real per-head sizes in key_length_mla / value_length_mla.
        int keyLen = f.GetInt(K("attention.key_length_mla")) is long kl ? (int)kl : Req("attention.key_length");
        int vLen = f.GetInt(K("attention.value_length_mla")) is long vl ? (int)vl : Req("attention.value_length");
        int blocks = Req("block_count");
        int nextn = Opt("nextn_predict_layers", 0);
        int nExperts = Opt("expert_count", 0);
        int nGroup = Opt("expert_group_count", 1);
        bool hasBias = tensors.Keys.Any(k => k.EndsWith("mlp.gate.e_score_correction_bias"));
        int gating = Opt("expert_gating_func", 1); // llama.cpp: absent means softmax for existing V2 files
        string scoring = gating switch
        {
            1 => "softmax",
            2 => "sigmoid",
            _ => throw ModelFormatException.In(f.Path, $"{K("expert_gating_func")} = {gating}, expected 1 (softmax) or 2 (sigmoid)"),
        };
        int vocab = f.GetInt(K("vocab_size")) is long vs ? (int)vs
            : f.Metadata.TryGetValue("tokenizer.ggml.tokens", out var toks) && toks is string[] ta ? ta.Length
            : tensors.TryGetValue("model.embed_tokens.weight", out var emb) ? (int)emb.Shape[0]
            : throw ModelFormatException.In(f.Path, "cannot tell the vocabulary size (no vocab_size, tokenizer.ggml.tokens or token_embd)");

        RopeScaling? scaling = null;
        string? scalingType = f.GetString(K("rope.scaling.type"));
        if (scalingType == "yarn")
        {
            // the converter writes yarn_log_multiplier = 0.1 * mscale_all_dim (llama.cpp divides it back out)
            double mscaleAll = (f.GetFloat(K("rope.scaling.yarn_log_multiplier")) ?? 0) / 0.1;
            scaling = new RopeScaling("yarn", f.GetFloat(K("rope.scaling.factor")) ?? 1,
                Opt("rope.scaling.original_context_length", 4096),
                BetaFast: f.GetFloat(K("rope.scaling.yarn_beta_fast")) ?? 32, BetaSlow: f.GetFloat(K("rope.scaling.yarn_beta_slow")) ?? 1,
                Mscale: mscaleAll, MscaleAllDim: mscaleAll);
        }
        else if (scalingType is not (null or "none"))
            throw ModelFormatException.In(f.Path, $"{K("rope.scaling.type")} = \"{scalingType}\" is not supported for deepseek2 (expected yarn or none)");

        int? bos = f.GetInt("tokenizer.ggml.bos_token_id") is long b ? (int)b : null;
        int[] eos = f.GetInt("tokenizer.ggml.eos_token_id") is long e2 ? [(int)e2] : [];
        int qLora = Opt("attention.q_lora_rank", 0);
        var config = new ModelConfig
        {
            Architecture = v32 ? Architecture.DeepSeekV32 : scoring == "sigmoid" ? Architecture.DeepSeekV3 : Architecture.DeepSeekV2,
            ModelType = arch,
            VocabSize = vocab,
            HiddenSize = Req("embedding_length"),
            IntermediateSize = Req("feed_forward_length"),
            NumLayers = blocks - nextn,
            NumHeads = heads,
            NumKvHeads = heads,
            HeadDim = keyLen,
            RmsNormEps = (float)(f.GetFloat(K("attention.layer_norm_rms_epsilon")) ?? 1e-6),
            RopeTheta = f.GetFloat(K("rope.freq_base")) ?? 10000,
            RopeScaling = scaling,
            MaxPositionEmbeddings = Opt("context_length", 4096),
            TieWordEmbeddings = !tensors.ContainsKey("lm_head.weight"),
            RopeInterleaved = true,
            BosTokenId = bos,
            EosTokenIds = eos,
            QLoraRank = qLora > 0 ? qLora : null,
            KvLoraRank = Req("attention.kv_lora_rank"),
            QkNopeHeadDim = keyLen - rope,
            QkRopeHeadDim = rope,
            VHeadDim = vLen,
            NRoutedExperts = nExperts,
            NSharedExperts = Opt("expert_shared_count", 0),
            MoeIntermediateSize = Opt("expert_feed_forward_length", 0),
            NumExpertsPerTok = Opt("expert_used_count", 0),
            NGroup = nGroup,
            TopkGroup = Opt("expert_group_used_count", 1),
            // llama.cpp has no topk_method: with the selection bias (V3) groups score by their top-2 sum, else by max
            TopkMethod = nGroup <= 1 ? "greedy" : hasBias ? "noaux_tc" : "group_limited_greedy",
            ScoringFunc = scoring,
            NormTopkProb = f.Metadata.TryGetValue(K("expert_weights_norm"), out var norm) && norm is true,
            RoutedScalingFactor = f.GetFloat(K("expert_weights_scale")) is double ws && ws != 0 ? ws : 1,
            FirstKDenseReplace = Opt("leading_dense_block_count", 0),
            MoeLayerFreq = 1,
            NumNextnPredictLayers = nextn,
            IndexNHeads = v32 ? Req("attention.indexer.head_count") : 0,
            IndexHeadDim = v32 ? Req("attention.indexer.key_length") : 0,
            IndexTopk = v32 ? Req("attention.indexer.top_k") : 0,
        };
        return (config, tensors);
    }

    private static readonly Regex HfLayerTensor = new(@"^model\.layers\.(\d+)\.(.+)$");

    /// <summary>
    /// HF name → deepseek2 GGUF name (the inverse of the reader's table), for writing GGUF files. Routed experts are
    /// not named one by one: a writer stacks them into <see cref="ExpertStackName"/>. Null for names without one.
    /// </summary>
    public static string? ToGgufName(string hf)
    {
        switch (hf)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        var m = HfLayerTensor.Match(hf);
        if (!m.Success) return null;
        foreach (var (gguf, name) in BlockNames)
            if (name == m.Groups[2].Value) return $"blk.{m.Groups[1].Value}.{gguf}";
        return null;
    }

    /// <summary>The stacked GGUF tensor [experts, rows, cols] of layer <paramref name="layer"/>'s routed experts'
    /// <paramref name="proj"/> (gate_proj, up_proj or down_proj).</summary>
    public static string ExpertStackName(int layer, string proj) =>
        $"blk.{layer}.{StackedExperts.First(kv => kv.Value == proj + ".weight").Key}";

    /// <summary>
    /// The deepseek2 (deepseek32 for V3.2) metadata that <see cref="FromGguf"/> reads back into <paramref name="c"/> (keys and types of
    /// convert_hf_to_gguf.py DeepseekV2Model), for writing GGUF files. Configs that this layout cannot express are
    /// refused rather than silently changed.
    /// </summary>
    public static List<(string Key, object Value)> Metadata(ModelConfig c, bool hasSelectionBias, string source)
    {
        string a = c.HasIndexer ? V32Architecture : "deepseek2";
        string Refuse(string why) => throw new ModelFormatException($"{source}: cannot be written as GGUF {a}: {why}");
        if (c.MoeLayerFreq > 1) Refuse($"moe_layer_freq {c.MoeLayerFreq} (the layout has MoE in every layer after the dense ones)");
        // The reader infers topk_method from the group count and the selection bias; greedy ignores groups.
        int groups = c.TopkMethod == "greedy" ? 1 : Math.Max(1, c.NGroup);
        if (groups > 1 && (c.TopkMethod == "noaux_tc") != hasSelectionBias)
            Refuse($"topk_method {c.TopkMethod} {(hasSelectionBias ? "with" : "without")} e_score_correction_bias");
        var meta = new List<(string, object)>
        {
            ($"{a}.block_count", (uint)c.NumLayers), ($"{a}.context_length", (uint)c.MaxPositionEmbeddings),
            ($"{a}.embedding_length", (uint)c.HiddenSize), ($"{a}.feed_forward_length", (uint)c.IntermediateSize),
            ($"{a}.attention.head_count", (uint)c.NumHeads), ($"{a}.attention.head_count_kv", (uint)c.NumHeads),
            ($"{a}.rope.freq_base", (float)c.RopeTheta), ($"{a}.attention.layer_norm_rms_epsilon", c.RmsNormEps),
            ($"{a}.vocab_size", (uint)c.VocabSize),
            ($"{a}.attention.kv_lora_rank", (uint)c.KvLoraRank),
            ($"{a}.attention.key_length", (uint)(c.QkNopeHeadDim + c.QkRopeHeadDim)),
            ($"{a}.attention.value_length", (uint)c.VHeadDim), ($"{a}.rope.dimension_count", (uint)c.QkRopeHeadDim),
            ($"{a}.leading_dense_block_count", (uint)(c.NRoutedExperts > 0 ? c.FirstKDenseReplace : c.NumLayers)),
            ($"{a}.expert_count", (uint)c.NRoutedExperts), ($"{a}.expert_used_count", (uint)c.NumExpertsPerTok),
            ($"{a}.expert_shared_count", (uint)c.NSharedExperts), ($"{a}.expert_feed_forward_length", (uint)c.MoeIntermediateSize),
            ($"{a}.expert_weights_scale", (float)c.RoutedScalingFactor), ($"{a}.expert_weights_norm", c.NormTopkProb),
            ($"{a}.expert_gating_func", c.ScoringFunc == "sigmoid" ? 2u : 1u),
            ($"{a}.expert_group_count", (uint)groups), ($"{a}.expert_group_used_count", (uint)(groups > 1 ? c.TopkGroup : 1)),
        };
        if (c.QLoraRank is int q && q > 0) meta.Add(($"{a}.attention.q_lora_rank", (uint)q));
        if (c.HasIndexer)
        {
            meta.Add(($"{a}.attention.indexer.head_count", (uint)c.IndexNHeads));
            meta.Add(($"{a}.attention.indexer.key_length", (uint)c.IndexHeadDim));
            meta.Add(($"{a}.attention.indexer.top_k", (uint)c.IndexTopk));
        }
        if (c.RopeScaling is { } rs)
        {
            if (rs.Type != "yarn") Refuse($"rope_scaling type {rs.Type} (expected yarn)");
            if (rs.Mscale != rs.MscaleAllDim) Refuse($"YaRN mscale {rs.Mscale} differs from mscale_all_dim {rs.MscaleAllDim}");
            meta.Add(($"{a}.rope.scaling.type", "yarn"));
            meta.Add(($"{a}.rope.scaling.factor", (float)rs.Factor));
            meta.Add(($"{a}.rope.scaling.original_context_length", (uint)rs.OriginalMaxPositionEmbeddings));
            meta.Add(($"{a}.rope.scaling.yarn_log_multiplier", (float)(0.1 * rs.MscaleAllDim)));
            meta.Add(($"{a}.rope.scaling.yarn_beta_fast", (float)rs.BetaFast));
            meta.Add(($"{a}.rope.scaling.yarn_beta_slow", (float)rs.BetaSlow));
        }
        return meta;
    }

    private static unsafe TensorView Rename(TensorView t, string name) => new(name, t.Type, t.Shape, t.Data, t.ByteLength, t.File);
}
