using System.Text.Json;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tools;

/// <summary>
/// Writes a synthetic model in Hugging Face layout: config.json (the fields transformers' Qwen2/Llama/DeepseekV2
/// configs use) and model.safetensors with HF tensor names, F32/F16/BF16 random weights (norms 1, biases 0).
/// </summary>
public static class SyntheticHfWriter
{
    public static long Write(ModelShape s, DType type, string dir, ulong seed)
    {
        if (type is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"--type {type}: the Hugging Face layout holds f32, f16 or bf16 (quantized types: write a .gguf)");
        Directory.CreateDirectory(dir);
        bool ds = s.Arch == "deepseek2";
        int hd = s.Hidden / s.Heads;
        var config = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { ds ? "DeepseekV2ForCausalLM" : s.Arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM" },
            ["model_type"] = ds ? "deepseek_v2" : s.Arch,
            ["vocab_size"] = s.Vocab, ["hidden_size"] = s.Hidden, ["intermediate_size"] = s.Ffn,
            ["num_hidden_layers"] = s.Layers, ["num_attention_heads"] = s.Heads, ["num_key_value_heads"] = s.KvHeads,
            ["rms_norm_eps"] = 1e-6, ["rope_theta"] = s.RopeTheta, ["max_position_embeddings"] = s.Context,
            ["tie_word_embeddings"] = s.Tied, ["torch_dtype"] = type == DType.BF16 ? "bfloat16" : type == DType.F16 ? "float16" : "float32",
        };
        if (ds)
        {
            config["q_lora_rank"] = s.QLoraRank; config["kv_lora_rank"] = s.KvLoraRank;
            config["qk_nope_head_dim"] = s.Nope; config["qk_rope_head_dim"] = s.Rope; config["v_head_dim"] = s.VDim;
            config["n_routed_experts"] = s.Experts; config["n_shared_experts"] = s.SharedExperts;
            config["moe_intermediate_size"] = s.ExpertFfn; config["num_experts_per_tok"] = s.TopK;
            config["first_k_dense_replace"] = s.LeadingDense; config["moe_layer_freq"] = 1;
            config["topk_method"] = "greedy"; config["scoring_func"] = "softmax"; config["norm_topk_prob"] = false;
            config["routed_scaling_factor"] = 1.0; config["n_group"] = 1; config["topk_group"] = 1;
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));

        var w = new SafeTensorsWriter();
        ulong state = seed | 1;
        void Matrix(string name, int rows, int cols) => AddMatrix(w, name, rows, cols, type, ref state);
        void Const(string name, int n, float value)
        {
            var v = Enumerable.Repeat(value, n).ToArray();
            var bytes = new byte[type.BlockBytes() * (long)n];
            Kernels.Quantize.Row(type, v, bytes);
            w.Add(name, type, [n], bytes.Length, st => st.Write(bytes));
        }
        void Mlp(string p, int inter)
        {
            Matrix(p + "gate_proj.weight", inter, s.Hidden);
            Matrix(p + "up_proj.weight", inter, s.Hidden);
            Matrix(p + "down_proj.weight", s.Hidden, inter);
        }

        Matrix("model.embed_tokens.weight", s.Vocab, s.Hidden);
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Const(p + "input_layernorm.weight", s.Hidden, 1);
            Const(p + "post_attention_layernorm.weight", s.Hidden, 1);
            if (ds)
            {
                string a = p + "self_attn.";
                Matrix(a + "q_proj.weight", s.Heads * (s.Nope + s.Rope), s.Hidden);
                Matrix(a + "kv_a_proj_with_mqa.weight", s.KvLoraRank + s.Rope, s.Hidden);
                Const(a + "kv_a_layernorm.weight", s.KvLoraRank, 1);
                Matrix(a + "kv_b_proj.weight", s.Heads * (s.Nope + s.VDim), s.KvLoraRank);
                Matrix(a + "o_proj.weight", s.Hidden, s.Heads * s.VDim);
                if (l < s.LeadingDense) Mlp(p + "mlp.", s.Ffn);
                else
                {
                    Matrix(p + "mlp.gate.weight", s.Experts, s.Hidden);
                    for (int e = 0; e < s.Experts; e++) Mlp($"{p}mlp.experts.{e}.", s.ExpertFfn);
                    Mlp(p + "mlp.shared_experts.", s.SharedExperts * s.ExpertFfn);
                }
            }
            else
            {
                string a = p + "self_attn.";
                Matrix(a + "q_proj.weight", s.Heads * hd, s.Hidden);
                Matrix(a + "k_proj.weight", s.KvHeads * hd, s.Hidden);
                Matrix(a + "v_proj.weight", s.KvHeads * hd, s.Hidden);
                if (s.Arch == "qwen2")
                {
                    Const(a + "q_proj.bias", s.Heads * hd, 0);
                    Const(a + "k_proj.bias", s.KvHeads * hd, 0);
                    Const(a + "v_proj.bias", s.KvHeads * hd, 0);
                }
                Matrix(a + "o_proj.weight", s.Hidden, s.Heads * hd);
                Mlp(p + "mlp.", s.Ffn);
            }
        }
        Const("model.norm.weight", s.Hidden, 1);
        if (!s.Tied) Matrix("lm_head.weight", s.Vocab, s.Hidden);
        string file = Path.Combine(dir, "model.safetensors");
        w.Write(file);
        return new FileInfo(file).Length;
    }

    private static void AddMatrix(SafeTensorsWriter w, string name, int rows, int cols, DType type, ref ulong state)
    {
        ulong st = state | 1; state = state * 6364136223846793005UL + 1442695040888963407UL;
        w.Add(name, type, [rows, cols], (long)rows * cols * type.BlockBytes(), stream =>
        {
            ulong local = st;
            for (int r0 = 0; r0 < rows; r0 += 4096)
                stream.Write(SyntheticWriter.RandomRows(Math.Min(4096, rows - r0), cols, type, ref local));
        });
    }
}
