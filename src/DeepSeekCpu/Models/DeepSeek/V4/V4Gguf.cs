using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// llama.cpp's GGUF <c>deepseek4</c> (DeepSeek-V4), read into and written from the released tensor names the V4 graph
/// reads. Sources (llama.cpp 3f545be): gguf-py/gguf/constants.py (MODEL_ARCH.DEEPSEEK4's tensor list and names),
/// conversion/deepseek.py DeepseekV4Model (what its converter writes), src/llama-arch.cpp (metadata keys),
/// src/models/deepseek4.cpp (which keys and shapes llama.cpp reads back).
/// <list type="bullet">
/// <item>Every tensor keeps the bytes of the released layout (GGUF lists dims innermost first, so a [rows, cols] tensor is
/// ne {cols, rows}); llama.cpp reads wo_a [o_groups·o_lora_rank, heads·head_dim/o_groups] as {…, o_lora_rank, o_groups}, the same bytes.</item>
/// <item>Routed experts are stacked per layer and projection, <c>blk.N.ffn_{gate,down,up}_exps</c> [experts, rows, cols]
/// (w1, w2, w3), as MXFP4: the converter repacks the FP4 codes and E8M0 scales into block_mxfp4 (lossless; our
/// <see cref="WeightMatrix.FromE2M1"/> is the same repacking).</item>
/// <item><c>ffn_gate_tid2eid</c> is I32 [vocab, top-k]; FP8 linears are dequantized (llama.cpp then writes Q8_0;
/// our writer takes the requested type), F32 tensors (hc_*, ape, sinks) stay F32.</item>
/// </list>
/// </summary>
internal static class V4Gguf
{
    /// <summary>gguf-py constants.py MODEL_ARCH.DEEPSEEK4.</summary>
    public const string Architecture = "deepseek4";

    /// <summary>Outside the blocks: GGUF name → released name.</summary>
    private static readonly (string Gguf, string Name)[] RootNames =
    [
        ("token_embd.weight", "embed.weight"), ("output_norm.weight", "norm.weight"), ("output.weight", "head.weight"),
        ("output_hc_fn.weight", "hc_head_fn"), ("output_hc_base.weight", "hc_head_base"), ("output_hc_scale.weight", "hc_head_scale"),
    ];

    /// <summary>Per block: the part after "blk.N." → the part after "layers.N." (conversion/deepseek.py's layer map).</summary>
    private static readonly (string Gguf, string Name)[] BlockNames =
    [
        ("attn_norm.weight", "attn_norm.weight"), ("ffn_norm.weight", "ffn_norm.weight"),
        ("hc_attn_fn.weight", "hc_attn_fn"), ("hc_attn_base.weight", "hc_attn_base"), ("hc_attn_scale.weight", "hc_attn_scale"),
        ("hc_ffn_fn.weight", "hc_ffn_fn"), ("hc_ffn_base.weight", "hc_ffn_base"), ("hc_ffn_scale.weight", "hc_ffn_scale"),
        ("attn_sinks.weight", "attn.attn_sink"),
        ("attn_q_a.weight", "attn.wq_a.weight"), ("attn_q_a_norm.weight", "attn.q_norm.weight"), ("attn_q_b.weight", "attn.wq_b.weight"),
        ("attn_kv.weight", "attn.wkv.weight"), ("attn_kv_a_norm.weight", "attn.kv_norm.weight"),
        ("attn_output_a.weight", "attn.wo_a.weight"), ("attn_output_b.weight", "attn.wo_b.weight"),
        ("attn_compressor_ape.weight", "attn.compressor.ape"), ("attn_compressor_kv.weight", "attn.compressor.wkv.weight"),
        ("attn_compressor_gate.weight", "attn.compressor.wgate.weight"), ("attn_compressor_norm.weight", "attn.compressor.norm.weight"),
        ("indexer.attn_q_b.weight", "attn.indexer.wq_b.weight"), ("indexer.proj.weight", "attn.indexer.weights_proj.weight"),
        ("indexer_compressor_ape.weight", "attn.indexer.compressor.ape"), ("indexer_compressor_kv.weight", "attn.indexer.compressor.wkv.weight"),
        ("indexer_compressor_gate.weight", "attn.indexer.compressor.wgate.weight"), ("indexer_compressor_norm.weight", "attn.indexer.compressor.norm.weight"),
        ("ffn_gate_inp.weight", "ffn.gate.weight"), ("exp_probs_b.bias", "ffn.gate.bias"), ("ffn_gate_tid2eid.weight", "ffn.gate.tid2eid"),
        ("ffn_gate_shexp.weight", "ffn.shared_experts.w1.weight"), ("ffn_down_shexp.weight", "ffn.shared_experts.w2.weight"),
        ("ffn_up_shexp.weight", "ffn.shared_experts.w3.weight"),
    ];

    /// <summary>The stacked routed experts: GGUF name after "blk.N." → the projection (w1 gate, w2 down, w3 up).</summary>
    private static readonly (string Gguf, string Proj)[] ExpertStacks =
        [("ffn_gate_exps.weight", "w1"), ("ffn_down_exps.weight", "w2"), ("ffn_up_exps.weight", "w3")];

    private static readonly Regex BlockTensor = new(@"^blk\.(\d+)\.(.+)$");
    private static readonly Regex LayerTensor = new(@"^layers\.(\d+)\.(.+)$");
    private static readonly Regex ExpertTensor = new(@"^layers\.(\d+)\.ffn\.experts\.(\d+)\.(w[123])\.weight$");

    // ---------- reading ----------

    /// <summary>The config and the tensors under the released names (views into the mapping; keep the file open).</summary>
    public static unsafe (ModelConfig, Dictionary<string, TensorView>) FromGguf(GgufFile f, IReadOnlyDictionary<string, TensorView>? shardTensors = null)
    {
        var fileTensors = shardTensors ?? f.Tensors;
        const string a = Architecture;
        int Req(string key) => checked((int)f.RequireInt($"{a}.{key}"));
        int Opt(string key, int dflt) => f.GetInt($"{a}.{key}") is long v ? checked((int)v) : dflt;
        double ReqFloat(string key) => f.GetFloat($"{a}.{key}") ?? throw ModelFormatException.In(f.Path, $"metadata key {a}.{key} is missing (expected a number)");

        var tensors = new Dictionary<string, TensorView>();
        foreach (var (name, t) in fileTensors)
        {
            if (RootNames.FirstOrDefault(r => r.Gguf == name).Name is { } root) { tensors[root] = Rename(t, root); continue; }
            var m = BlockTensor.Match(name);
            if (!m.Success) continue;                                  // nothing else outside the blocks is read
            string layer = $"layers.{m.Groups[1].Value}.", rest = m.Groups[2].Value;
            if (BlockNames.FirstOrDefault(b => b.Gguf == rest).Name is { } hf) tensors[layer + hf] = Rename(t, layer + hf);
            else if (ExpertStacks.FirstOrDefault(s => s.Gguf == rest).Proj is { } proj)
            {
                if (t.Rank != 3) throw ModelFormatException.In(f.Path, $"tensor {name} has shape {t.ShapeText}, expected [experts, rows, cols]");
                long rows = t.Shape[1], cols = t.Shape[2], bytes = t.Type.ByteCount(rows * cols);
                for (int e = 0; e < t.Shape[0]; e++)
                {
                    string hfName = $"{layer}ffn.experts.{e}.{proj}.weight";
                    tensors[hfName] = new TensorView(hfName, t.Type, [rows, cols], t.Data + bytes * e, bytes, t.File);
                }
            }
            // others (the MTP block's nextn.*): not read
        }

        int gating = Req("expert_gating_func");
        string scoring = gating switch
        {
            1 => "softmax", 2 => "sigmoid", 4 => "sqrtsoftplus",   // llama-hparams.h LLAMA_EXPERT_GATING_FUNC_TYPE_*
            _ => throw ModelFormatException.In(f.Path, $"{a}.expert_gating_func = {gating}, expected 1 (softmax), 2 (sigmoid) or 4 (sqrtsoftplus)"),
        };
        RopeScaling? scaling = null;
        if (f.GetString($"{a}.rope.scaling.type") is { } st && st != "none")
        {
            if (st != "yarn") throw ModelFormatException.In(f.Path, $"{a}.rope.scaling.type = \"{st}\", expected yarn or none");
            scaling = new RopeScaling("yarn", ReqFloat("rope.scaling.factor"), Req("rope.scaling.original_context_length"),
                BetaFast: f.GetFloat($"{a}.rope.scaling.yarn_beta_fast") ?? 32, BetaSlow: f.GetFloat($"{a}.rope.scaling.yarn_beta_slow") ?? 1);
        }
        int blocks = Req("block_count"), nextn = Opt("nextn_predict_layers", 0), layers = blocks - nextn;
        var ratios = f.Metadata.TryGetValue($"{a}.attention.compress_ratios", out var cr) ? cr switch
        {
            int[] i => i, long[] l => Array.ConvertAll(l, x => checked((int)x)), _ => null,
        } : null;
        if (ratios == null || ratios.Length < layers || ratios.Any(r => r < 0))
            throw ModelFormatException.In(f.Path, $"{a}.attention.compress_ratios must be an array of integers ≥ 0, one per block ({layers})");
        double swiglu = f.Metadata.TryGetValue($"{a}.swiglu_clamp_exp", out var sc) ? sc switch
        {
            float[] fa when fa.Length > 0 && fa.All(x => x == fa[0]) => fa[0],
            float one => one,
            _ => throw ModelFormatException.In(f.Path, $"{a}.swiglu_clamp_exp must be one limit for every layer"),
        } : 0;
        int moeInter = Req("expert_feed_forward_length");
        int vocab = tensors.TryGetValue("embed.weight", out var emb) && emb.Rank == 2 ? (int)emb.Shape[0]
            : throw ModelFormatException.In(f.Path, "tensor token_embd.weight is missing or not 2-D");
        int? bos = f.GetInt("tokenizer.ggml.bos_token_id") is long b ? (int)b : null;
        int[] eos = f.GetInt("tokenizer.ggml.eos_token_id") is long e2 ? [(int)e2] : [];
        var config = new ModelConfig
        {
            Architecture = Models.Architecture.DeepSeekV4,
            ModelType = "deepseek_v4",
            VocabSize = Opt("vocab_size", vocab),
            HiddenSize = Req("embedding_length"),
            IntermediateSize = moeInter,
            NumLayers = layers,
            NumHeads = Req("attention.head_count"),
            NumKvHeads = Opt("attention.head_count_kv", 1),
            HeadDim = Req("attention.key_length"),
            RmsNormEps = (float)(f.GetFloat($"{a}.attention.layer_norm_rms_epsilon") ?? 1e-6),
            RopeTheta = f.GetFloat($"{a}.rope.freq_base") ?? 10000,
            RopeScaling = scaling,
            MaxPositionEmbeddings = Opt("context_length", 4096),
            TieWordEmbeddings = false,
            RopeInterleaved = true,
            BosTokenId = bos,
            EosTokenIds = eos,
            QLoraRank = Req("attention.q_lora_rank"),
            QkRopeHeadDim = Req("rope.dimension_count"),
            NRoutedExperts = Req("expert_count"),
            NSharedExperts = Opt("expert_shared_count", 1),
            MoeIntermediateSize = moeInter,
            NumExpertsPerTok = Req("expert_used_count"),
            ScoringFunc = scoring,
            NormTopkProb = f.Metadata.TryGetValue($"{a}.expert_weights_norm", out var norm) && norm is true,
            RoutedScalingFactor = f.GetFloat($"{a}.expert_weights_scale") is double ws && ws != 0 ? ws : 1,
            IndexNHeads = Opt("attention.indexer.head_count", 0),
            IndexHeadDim = Opt("attention.indexer.key_length", 0),
            IndexTopk = Opt("attention.indexer.top_k", 0),
            V4 = new DeepSeekV4Config(ratios[..layers], ReqFloat("attention.compress_rope_freq_base"), Req("attention.sliding_window"),
                Req("attention.output_group_count"), Req("attention.output_lora_rank"), Req("hyper_connection.count"),
                Req("hyper_connection.sinkhorn_iterations"), f.GetFloat($"{a}.hyper_connection.epsilon") ?? 1e-6,
                Opt("hash_layer_count", 0), swiglu, "fp4"),
        }.Validate(f.Path);
        return (config, tensors);
    }

    private static unsafe TensorView Rename(TensorView t, string name) => new(name, t.Type, t.Shape, t.Data, t.ByteLength, t.File);

    // ---------- writing ----------

    /// <summary>The deepseek4 keys of <paramref name="c"/> that <see cref="FromGguf"/> and llama.cpp's loader read.</summary>
    public static List<(string Key, object Value)> Metadata(ModelConfig c)
    {
        const string a = Architecture;
        var v4 = c.V4!;
        var meta = new List<(string, object)>
        {
            ($"{a}.block_count", (uint)c.NumLayers), ($"{a}.context_length", (uint)c.MaxPositionEmbeddings),
            ($"{a}.embedding_length", (uint)c.HiddenSize), ($"{a}.vocab_size", (uint)c.VocabSize),
            ($"{a}.attention.head_count", (uint)c.NumHeads), ($"{a}.attention.head_count_kv", (uint)c.NumKvHeads),
            ($"{a}.attention.key_length", (uint)c.HeadDim), ($"{a}.attention.value_length", (uint)c.HeadDim),
            ($"{a}.rope.dimension_count", (uint)c.QkRopeHeadDim), ($"{a}.rope.freq_base", (float)c.RopeTheta),
            ($"{a}.attention.layer_norm_rms_epsilon", c.RmsNormEps), ($"{a}.attention.q_lora_rank", (uint)(c.QLoraRank ?? 0)),
            ($"{a}.attention.sliding_window", (uint)v4.SlidingWindow),
            ($"{a}.expert_count", (uint)c.NRoutedExperts), ($"{a}.expert_used_count", (uint)c.NumExpertsPerTok),
            ($"{a}.expert_shared_count", (uint)c.NSharedExperts), ($"{a}.expert_feed_forward_length", (uint)c.MoeIntermediateSize),
            ($"{a}.expert_weights_scale", (float)c.RoutedScalingFactor), ($"{a}.expert_weights_norm", c.NormTopkProb),
            ($"{a}.expert_gating_func", c.ScoringFunc switch { "sigmoid" => 2u, "softmax" => 1u, _ => 4u }),
            ($"{a}.swiglu_clamp_exp", Enumerable.Repeat((float)v4.SwigluLimit, c.NumLayers).ToArray()),
            ($"{a}.swiglu_clamp_shexp", Enumerable.Repeat((float)v4.SwigluLimit, c.NumLayers).ToArray()),
            ($"{a}.attention.indexer.head_count", (uint)c.IndexNHeads), ($"{a}.attention.indexer.key_length", (uint)c.IndexHeadDim),
            ($"{a}.attention.indexer.top_k", (uint)c.IndexTopk),
            ($"{a}.attention.output_group_count", (uint)v4.OGroups), ($"{a}.attention.output_lora_rank", (uint)v4.OLoraRank),
            ($"{a}.attention.compress_ratios", v4.CompressRatios.Take(c.NumLayers).ToArray()),
            ($"{a}.attention.compress_rope_freq_base", (float)v4.CompressRopeTheta),
            ($"{a}.hyper_connection.count", (uint)v4.HcMult), ($"{a}.hyper_connection.sinkhorn_iterations", (uint)v4.HcSinkhornIters),
            ($"{a}.hyper_connection.epsilon", (float)v4.HcEps), ($"{a}.hash_layer_count", (uint)v4.NumHashLayers),
        };
        if (c.RopeScaling is { Type: "yarn" } y)
        {
            meta.Add(($"{a}.rope.scaling.type", "yarn"));
            meta.Add(($"{a}.rope.scaling.factor", (float)y.Factor));
            meta.Add(($"{a}.rope.scaling.original_context_length", (uint)y.OriginalMaxPositionEmbeddings));
            meta.Add(($"{a}.rope.scaling.yarn_beta_fast", (float)y.BetaFast));
            meta.Add(($"{a}.rope.scaling.yarn_beta_slow", (float)y.BetaSlow));
        }
        return meta;
    }

    /// <summary>
    /// Every tensor of <paramref name="weights"/> (released V4 names) under its deepseek4 name, embedding and root tensors
    /// first, then the blocks in order: F32 and 1-D tensors as F32, the router F32, tid2eid I32, routed experts stacked
    /// as MXFP4 (FP4 sources repacked exactly, other sources quantized), other matrices <paramref name="type"/> (FP8
    /// dequantized with its block scales).
    /// </summary>
    public static void AddTensors(GgufWriter w, ModelConfig c, ModelWeights weights, DType type)
    {
        foreach (var (gguf, name) in RootNames) if (weights.Contains(name)) Add(w, weights, gguf, name, type);
        for (int l = 0; l < c.NumLayers; l++)
        {
            foreach (var (gguf, name) in BlockNames)
                if (weights.Contains($"layers.{l}.{name}")) Add(w, weights, $"blk.{l}.{gguf}", $"layers.{l}.{name}", type);
            foreach (var (gguf, proj) in ExpertStacks) AddExpertStack(w, weights, c, l, proj, $"blk.{l}.{gguf}", type);
        }
    }

    private static unsafe void Add(GgufWriter w, ModelWeights weights, string gguf, string name, DType type)
    {
        var t = weights.Get(name);
        if (name.EndsWith("tid2eid"))
        {
            var table = new int[t.ElementCount];                       // I64 or I32 in, I32 out (as the converter)
            for (long i = 0; i < table.Length; i++) table[i] = t.Type == DType.I64 ? checked((int)((long*)t.Data)[i]) : ((int*)t.Data)[i];
            w.AddTensor(gguf, DType.I32, t.Shape, MemoryMarshal.AsBytes(table.AsSpan()).ToArray());
            return;
        }
        if (t.Rank == 1 || t.Type == DType.F32)
        {
            var v = V4Weights.Floats(weights, name, t.Shape.Select(d => checked((int)d)).ToArray());
            w.AddTensor(gguf, DType.F32, t.Shape, MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
            return;
        }
        int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
        var m = V4Weights.Linear(weights, name[..^".weight".Length], rows, cols);
        var target = name.EndsWith("ffn.gate.weight") ? DType.F32 : GgufExport.TargetFor(type, cols);
        w.AddTensor(gguf, target, t.Shape, target.ByteCount((long)rows * cols), s => GgufExport.WriteRows(s, m, target, 0));
    }

    /// <summary>Layer <paramref name="layer"/>'s routed experts' <paramref name="proj"/> as one [experts, rows, cols] tensor.</summary>
    private static unsafe void AddExpertStack(GgufWriter w, ModelWeights weights, ModelConfig c, int layer, string proj, string gguf, DType type)
    {
        var experts = new WeightMatrix[c.NRoutedExperts];
        for (int e = 0; e < experts.Length; e++)
        {
            string prefix = $"layers.{layer}.ffn.experts.{e}.{proj}";
            var t = weights.Get(prefix + ".weight");
            experts[e] = t.Type == DType.I8
                ? WeightMatrix.FromE2M1(t, weights.TryGet(prefix + ".scale") ?? throw new ModelFormatException($"{t.File}: FP4 tensor {t.Name} has no {prefix}.scale"))
                : V4Weights.Linear(weights, prefix, (int)t.Shape[0], (int)t.Shape[1]);
        }
        int rows = experts[0].Rows, cols = experts[0].Cols;
        if (experts.Any(m => m.Rows != rows || m.Cols != cols))
            throw new ModelFormatException($"{weights.Source}: layer {layer}'s routed experts' {proj} matrices differ in shape");
        // FP4 experts are already MXFP4 (exact); others are quantized to MXFP4, as llama.cpp stores every V4 expert
        var target = cols % 32 == 0 ? DType.MXFP4 : GgufExport.TargetFor(type, cols);
        long per = target.ByteCount((long)rows * cols);
        w.AddTensor(gguf, target, [experts.Length, rows, cols], per * experts.Length, s =>
        {
            foreach (var m in experts)
            {
                if (m.Type == target) s.Write(new ReadOnlySpan<byte>(m.Data, checked((int)per)));
                else GgufExport.WriteRows(s, m, target, 0);
                if (m.Type == DType.MXFP4 && m.Owner != null) m.Dispose();   // a repacked copy: written, no longer needed
            }
        });
    }
}
