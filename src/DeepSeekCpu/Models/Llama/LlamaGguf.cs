using DeepSeekCpu.Formats;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.Llama;

/// <summary>
/// GGUF architectures "llama", "qwen2" and "qwen3" mapped onto <see cref="ModelConfig"/> and Hugging Face tensor names.
/// Names and keys: llama.cpp gguf-py/gguf/constants.py (MODEL_TENSOR / TENSOR_NAMES, Keys.LLM, Keys.Attention, Keys.Rope).
/// llama.cpp's converter permutes the Q/K rows of "llama" so that its rope rotates interleaved pairs;
/// "qwen2" and "qwen3" are not permuted and use the NeoX (rotate-half) rope (llama.cpp src/models/qwen3.cpp: attn_q_norm /
/// attn_k_norm per head before the rope; head width from attention.key_length).
/// </summary>
internal static class LlamaGguf
{
    private static readonly (string gguf, string hf)[] LayerNames =
    [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_q.bias", "self_attn.q_proj.bias"),
        ("attn_k.bias", "self_attn.k_proj.bias"),
        ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_q_norm.weight", "self_attn.q_norm.weight"),
        ("attn_k_norm.weight", "self_attn.k_norm.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ];

    private static readonly (string gguf, string hf)[] GlobalNames =
    [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ];

    /// <summary>HF name → GGUF name, for writing GGUF files (quantize) from any source.</summary>
    public static string? ToGgufName(string hf)
    {
        foreach (var (g, h) in GlobalNames) if (h == hf) return g;
        if (!hf.StartsWith("model.layers.")) return null;
        int dot = hf.IndexOf('.', 13);
        if (dot < 0) return null;   // "model.layers.N" alone names no tensor
        string layer = hf[13..dot], rest = hf[(dot + 1)..];
        foreach (var (g, h) in LayerNames) if (h == rest) return $"blk.{layer}.{g}";
        return null;
    }

    public static (ModelConfig config, Dictionary<string, TensorView> tensors) FromGguf(GgufFile f, IReadOnlyDictionary<string, TensorView>? shardTensors = null)
    {
        var fileTensors = shardTensors ?? f.Tensors;   // a split model's tensors are in all its shards (GgufShards)
        string arch = f.GetString("general.architecture") ?? throw ModelFormatException.In(f.Path, "metadata key general.architecture is missing");
        var a = arch switch
        {
            "llama" => Architecture.Llama,
            "qwen2" => Architecture.Qwen2,
            "qwen3" => Architecture.Qwen3,
            _ => throw ModelFormatException.In(f.Path, $"general.architecture \"{arch}\" is not llama, qwen2 or qwen3"),
        };
        int layers = (int)f.RequireInt($"{arch}.block_count");
        int hidden = (int)f.RequireInt($"{arch}.embedding_length");
        int heads = (int)f.RequireInt($"{arch}.attention.head_count");
        int kvHeads = (int)(f.GetInt($"{arch}.attention.head_count_kv") ?? heads);
        int vocab = f.GetInt($"{arch}.vocab_size") is long v ? (int)v
            : f.Metadata.TryGetValue("tokenizer.ggml.tokens", out var toks) && toks is string[] ts ? ts.Length
            : fileTensors.TryGetValue("token_embd.weight", out var emb) ? (int)emb.Shape[0]
            : throw ModelFormatException.In(f.Path, "cannot tell the vocabulary size (no tokenizer.ggml.tokens)");

        var tensors = new Dictionary<string, TensorView>();
        foreach (var (name, t) in fileTensors)
        {
            string? hf = null;
            foreach (var (g, h) in GlobalNames) if (g == name) hf = h;
            if (hf == null && name.StartsWith("blk."))
            {
                int dot = name.IndexOf('.', 4);
                if (dot > 4)   // "blk.N.rest"; a file may hold other names, which are not ours to map
                {
                    string layer = name[4..dot], rest = name[(dot + 1)..];
                    foreach (var (g, h) in LayerNames) if (g == rest) hf = $"model.layers.{layer}.{h}";
                }
            }
            if (hf != null) tensors[hf] = Renamed(t, hf);
        }

        // Llama 3.1's rope scaling is stored by llama.cpp's converter only as per-frequency divisors in a "rope_freqs"
        // tensor (no rope.scaling.* keys), and llama.cpp divides each frequency by it: use the tensor when present.
        // Without it, rope.scaling.type "llama3" uses the metadata parameters (defaults: Llama 3.1's).
        RopeScaling? scaling = null;
        string? scalingType = f.GetString($"{arch}.rope.scaling.type");
        double[]? freqFactors = null;
        if (fileTensors.TryGetValue("rope_freqs.weight", out var rf))
        {
            var factors = new float[rf.ElementCount];
            unsafe { Kernels.Dequantize.Row(rf.Type, rf.Data, factors); }
            freqFactors = Array.ConvertAll(factors, x => (double)x);
        }
        if (freqFactors != null || scalingType == "llama3")
        {
            scaling = new RopeScaling("llama3",
                f.GetFloat($"{arch}.rope.scaling.factor") ?? 8,
                (int)(f.GetInt($"{arch}.rope.scaling.original_context_length") ?? 8192),
                LowFreqFactor: 1, HighFreqFactor: 4, FreqFactors: freqFactors);
        }
        else if (scalingType == "yarn")
        {
            // llama.cpp reads factor and original context (llama-model.cpp) and multiplies cos/sin by 1 + 0.1 ln(factor)
            // (ggml rope with ext_factor 1; llama-context.cpp), which is HF's default attention factor: Mscale 1.
            scaling = new RopeScaling("yarn", f.GetFloat($"{arch}.rope.scaling.factor") ?? 1,
                (int)(f.GetInt($"{arch}.rope.scaling.original_context_length") ?? f.GetInt($"{arch}.context_length") ?? 4096),
                BetaFast: f.GetFloat($"{arch}.rope.scaling.yarn_beta_fast") ?? 32, BetaSlow: f.GetFloat($"{arch}.rope.scaling.yarn_beta_slow") ?? 1);
        }
        else if (scalingType == "linear")
            scaling = new RopeScaling("linear", f.GetFloat($"{arch}.rope.scaling.factor") ?? 1, 0);

        int? bos = f.GetInt("tokenizer.ggml.bos_token_id") is long b ? (int)b : null;
        int[] eos = f.GetInt("tokenizer.ggml.eos_token_id") is long e ? [(int)e] : [];
        var config = new ModelConfig
        {
            Architecture = a,
            ModelType = arch,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = (int)f.RequireInt($"{arch}.feed_forward_length"),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = (int)(f.GetInt($"{arch}.attention.key_length") ?? hidden / heads),
            RmsNormEps = (float)(f.GetFloat($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-6),
            RopeTheta = f.GetFloat($"{arch}.rope.freq_base") ?? 10000,
            RopeScaling = scaling,
            MaxPositionEmbeddings = (int)(f.GetInt($"{arch}.context_length") ?? 4096),
            TieWordEmbeddings = !tensors.ContainsKey("lm_head.weight"),
            AttentionBias = tensors.ContainsKey("model.layers.0.self_attn.q_proj.bias"),
            RopeInterleaved = a == Architecture.Llama,
            BosTokenId = bos,
            EosTokenIds = eos,
        };
        return (config, tensors);
    }

    private static unsafe TensorView Renamed(TensorView t, string name) => new(name, t.Type, t.Shape, t.Data, t.ByteLength, t.File);
}
