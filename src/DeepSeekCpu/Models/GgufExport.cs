using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Models.Llama;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models;

/// <summary>
/// Writes models as GGUF files that llama.cpp reads: its architecture names ("llama", "qwen2", "deepseek2"), metadata
/// keys and value types (convert_hf_to_gguf.py), file type code (llama.h LLAMA_FTYPE_*), tensor names
/// (<see cref="LlamaGguf.ToGgufName"/>, <see cref="DeepSeekGguf.ToGgufName"/>) and layouts. Used by the CLI's
/// `quantize` (a model's weights, any source) and the tools' `synth` (random weights of a published shape).
/// A writer is made by <see cref="CreateWriter"/> (general.* and architecture keys); the caller adds a vocabulary
/// (tokenizer.* keys), then the tensors (<see cref="AddTensors"/> for a model's weights), and writes it.
/// </summary>
internal static class GgufExport
{
    /// <summary>llama.cpp's name of the architecture of <paramref name="c"/>.</summary>
    public static string ArchitectureName(ModelConfig c) => c.Architecture switch
    {
        Architecture.Llama => "llama",
        Architecture.Qwen2 => "qwen2",
        Architecture.Qwen3 => "qwen3",
        Architecture.DeepSeekV32 => DeepSeekGguf.V32Architecture,
        Architecture.DeepSeekV4 => DeepSeek.V4.V4Gguf.Architecture,
        _ => "deepseek2",
    };

    /// <summary>general.file_type of a file whose matrices are <paramref name="type"/> (llama.h LLAMA_FTYPE_*).</summary>
    public static uint FileType(DType type) => type switch
    {
        DType.F32 => 0, DType.F16 => 1, DType.Q4_0 => 2, DType.Q4_1 => 3, DType.Q8_0 => 7, DType.Q5_0 => 8,
        DType.Q4_K => 15, DType.Q5_K => 17, DType.Q6_K => 18, DType.BF16 => 32,
        DType.Q5_1 => 9, DType.Q2_K => 10, DType.Q3_K => 11, DType.IQ4_NL => 25, DType.IQ4_XS => 30,   // Q3_K_S: every matrix Q3_K
        DType.MXFP4 => 38,   // LLAMA_FTYPE_MOSTLY_MXFP4_MOE, llama.cpp's only MXFP4 file type
        DType.IQ2_XXS => 19, DType.IQ2_XS => 20, DType.IQ3_XXS => 23, DType.IQ1_S => 24, DType.IQ3_S => 26, DType.IQ2_S => 28, DType.IQ1_M => 31,
        _ => throw new NotSupportedException($"GGUF export to {type} is not supported"),
    };

    /// <summary>True when the MoE router has DeepSeek-V3's selection bias (written as exp_probs_b).</summary>
    public static bool HasSelectionBias(ModelWeights weights) =>
        weights.Tensors.Keys.Any(k => k.EndsWith("mlp.gate.e_score_correction_bias"));

    /// <summary>
    /// A writer holding the general.* keys and the architecture's metadata for <paramref name="c"/>, with matrices of
    /// <paramref name="type"/>. Configs the layout cannot express are refused (one line naming <paramref name="source"/>).
    /// </summary>
    public static GgufWriter CreateWriter(ModelConfig c, DType type, string name, bool hasSelectionBias, string source)
    {
        string arch = ArchitectureName(c);
        var w = new GgufWriter();
        w.Add("general.architecture", arch).Add("general.name", name)
         .Add("general.file_type", FileType(type)).Add("general.quantization_version", 2u);
        var meta = c.V4 != null ? DeepSeek.V4.V4Gguf.Metadata(c) : c.IsMla ? DeepSeekGguf.Metadata(c, hasSelectionBias, source) : LlamaMetadata(c, arch, source);
        foreach (var (k, v) in meta) w.Add(k, v);
        return w;
    }

    /// <summary>The "llama"/"qwen2"/"qwen3" keys of <paramref name="c"/> (convert_hf_to_gguf.py LlamaModel, Qwen2Model, Qwen3Model).</summary>
    private static List<(string Key, object Value)> LlamaMetadata(ModelConfig c, string arch, string source)
    {
        var meta = new List<(string, object)>
        {
            ($"{arch}.block_count", (uint)c.NumLayers), ($"{arch}.context_length", (uint)c.MaxPositionEmbeddings),
            ($"{arch}.embedding_length", (uint)c.HiddenSize), ($"{arch}.feed_forward_length", (uint)c.IntermediateSize),
            ($"{arch}.attention.head_count", (uint)c.NumHeads), ($"{arch}.attention.head_count_kv", (uint)c.NumKvHeads),
            ($"{arch}.rope.freq_base", (float)c.RopeTheta), ($"{arch}.attention.layer_norm_rms_epsilon", c.RmsNormEps),
            ($"{arch}.rope.dimension_count", (uint)c.HeadDim), ($"{arch}.vocab_size", (uint)c.VocabSize),
        };
        if (c.HeadDim != c.HiddenSize / c.NumHeads)
        {
            meta.Add(($"{arch}.attention.key_length", (uint)c.HeadDim));
            meta.Add(($"{arch}.attention.value_length", (uint)c.HeadDim));
        }
        if (c.RopeScaling is { Type: "yarn" } y)
        {
            // convert_hf_to_gguf.py ModelBase (rope_type "yarn"): type, factor, original context; betas when not default
            meta.Add(($"{arch}.rope.scaling.type", "yarn"));
            meta.Add(($"{arch}.rope.scaling.factor", (float)y.Factor));
            meta.Add(($"{arch}.rope.scaling.original_context_length", (uint)y.OriginalMaxPositionEmbeddings));
            if (y.BetaFast != 32) meta.Add(($"{arch}.rope.scaling.yarn_beta_fast", (float)y.BetaFast));
            if (y.BetaSlow != 1) meta.Add(($"{arch}.rope.scaling.yarn_beta_slow", (float)y.BetaSlow));
            if (y.AttentionFactor != null || y.MscaleAllDim != 0 || y.Mscale != 1)
                throw ModelFormatException.In(source, $"rope_scaling yarn with attention_factor or mscale has no GGUF key that llama.cpp applies to {arch} (export refused rather than changing the model)");
        }
        return meta;
    }

    /// <summary>
    /// Adds every tensor of <paramref name="weights"/> under its GGUF name, in llama.cpp's converter order (embedding,
    /// layers in numeric order, head). Matrices become <paramref name="type"/> (Q8_0 or F16 where the row length does
    /// not fit its blocks), vectors and the MoE router stay F32. "llama" from Hugging Face weights gets llama.cpp's
    /// Q/K row permutation and Llama 3.1's rope_freqs tensor; DeepSeek's routed experts are stacked per layer, FP8
    /// scales applied, and the MTP layers left out.
    /// </summary>
    public static void AddTensors(GgufWriter w, ModelConfig c, ModelWeights weights, DType type)
    {
        if (c.V4 != null) { DeepSeek.V4.V4Gguf.AddTensors(w, c, weights, type); return; }
        if (c.IsMla && weights.Contains("model.layers.0.self_attn.k_b_proj.weight"))
            throw new ModelFormatException($"{weights.Source}: stores MLA's kv_b split into attn_k_b/attn_v_b; re-quantizing that layout is not supported (quantize from the Hugging Face folder or a GGUF with attn_kv_b)");
        // llama.cpp expects its own rope layout for "llama": permute Q/K rows of HF weights (not of a llama GGUF source).
        bool permute = c.Architecture == Architecture.Llama && !c.RopeInterleaved;
        foreach (string hf in weights.Tensors.Keys.OrderBy(TensorOrderKey).ToList())
        {
            var t = weights.Tensors[hf];
            if (c.IsMla)
            {
                if (hf.EndsWith("_scale_inv")) continue;                       // FP8 scales: applied when reading rows
                if (TensorOrderKey(hf) is (1, int layer, _) && layer >= c.NumLayers) continue; // MTP layers: not exported
                if (ExpertIndex(hf) is (int l, int e, string proj))
                {
                    if (e == 0) AddExpertStack(w, weights, c, l, proj, type);    // all experts of the layer, stacked
                    continue;
                }
            }
            string name = (c.IsMla ? DeepSeekGguf.ToGgufName(hf) : LlamaGguf.ToGgufName(hf))
                ?? throw new ModelFormatException($"{weights.Source}: tensor {hf} has no GGUF name");
            if (c.TieWordEmbeddings && name == "output.weight") continue;
            if (t.Rank == 1)
            {
                var v = weights.Vector(hf, (int)t.ElementCount);
                w.AddTensor(name, DType.F32, t.Shape, MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
                continue;
            }
            var m = WeightMatrix.From(t, weights.TryGet(hf + "_scale_inv"));
            // the MoE router stays F32, as llama.cpp's quantizer leaves ffn_gate_inp
            var target = hf.EndsWith("mlp.gate.weight") ? DType.F32 : TargetFor(type, m.Cols);
            int heads = hf.EndsWith("q_proj.weight") ? c.NumHeads : hf.EndsWith("k_proj.weight") ? c.NumKvHeads : 0;
            bool perm = permute && heads > 0;
            w.AddTensor(name, target, t.Shape, target.ByteCount((long)m.Rows * m.Cols), s => WriteRows(s, m, target, perm ? heads : 0));
        }
        if (c.Architecture == Architecture.Llama && c.RopeScaling is { Type: "llama3" } rs)
            w.AddTensor("rope_freqs.weight", DType.F32, [c.HeadDim / 2],
                MemoryMarshal.AsBytes((rs.FreqFactors is { } ff ? Array.ConvertAll(ff, x => (float)x) : Llama3FreqFactors(c, rs)).AsSpan()).ToArray());
    }

    /// <summary>The requested type where the row length fits its blocks, else Q8_0, else F16 (llama.cpp's fallbacks).</summary>
    internal static DType TargetFor(DType type, int cols) =>
        cols % type.BlockSize() == 0 ? type : cols % DType.Q8_0.BlockSize() == 0 ? DType.Q8_0 : DType.F16;

    private static readonly Regex ExpertTensor = new(@"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$");

    /// <summary>(layer, expert, projection) of a routed expert's matrix "model.layers.L.mlp.experts.E.PROJ.weight".</summary>
    private static (int, int, string)? ExpertIndex(string hf)
    {
        var m = ExpertTensor.Match(hf);
        return m.Success ? (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), m.Groups[3].Value) : null;
    }

    /// <summary>
    /// deepseek2 stores a layer's routed experts as one tensor per projection, [experts, rows, cols] (ggml ne
    /// {cols, rows, experts}; convert_hf_to_gguf.py DeepseekV2Model stacks them the same way).
    /// </summary>
    private static void AddExpertStack(GgufWriter w, ModelWeights weights, ModelConfig c, int layer, string proj, DType type)
    {
        var experts = new WeightMatrix[c.NRoutedExperts];
        for (int e = 0; e < experts.Length; e++)
        {
            string hf = $"model.layers.{layer}.mlp.experts.{e}.{proj}.weight";
            experts[e] = WeightMatrix.From(weights.Get(hf), weights.TryGet(hf + "_scale_inv"));
        }
        int rows = experts[0].Rows, cols = experts[0].Cols;
        var target = TargetFor(type, cols);
        long per = target.ByteCount((long)rows * cols);
        w.AddTensor(DeepSeekGguf.ExpertStackName(layer, proj), target, [experts.Length, rows, cols], per * experts.Length, s =>
        {
            foreach (var m in experts) WriteRows(s, m, target, 0);
        });
    }

    /// <summary>
    /// Row r of the output is row src(r) of the input; with heads > 0, llama.cpp's Q/K permutation. Quantized in
    /// chunks of rows on the worker pool (Quantize.RowsInto), written in order.
    /// </summary>
    internal static unsafe void WriteRows(Stream s, WeightMatrix m, DType target, int heads)
    {
        int perHead = heads > 0 ? m.Rows / heads : 0, half = perHead / 2;
        Func<int, int>? source = heads <= 0 ? null : r =>
        {
            // convert_hf_to_gguf.py LlamaModel.permute: reshape(heads, 2, half, cols).swapaxes(1, 2):
            // output row (h, i, k) ← input row (h, k, i), i.e. interleave the two halves of each head.
            int h = r / perHead, j = r % perHead, i = j / 2, k = j % 2;
            return h * perHead + k * half + i;
        };
        long rowBytes = target.ByteCount(m.Cols);
        int chunk = (int)Math.Clamp((8L << 20) / Math.Max(1, rowBytes), 1, m.Rows);   // about 8 MB per chunk
        var buffer = new byte[chunk * rowBytes];
        fixed (byte* p = buffer)
            for (int r0 = 0; r0 < m.Rows; r0 += chunk)
            {
                int n = Math.Min(chunk, m.Rows - r0);
                Quantize.RowsInto(m, target, r0, n, p, source);
                s.Write(buffer, 0, checked((int)(n * rowBytes)));
            }
    }

    /// <summary>Llama 3.1 rope scaling as per-frequency divisors (convert_hf_to_gguf.py LlamaModel.generate_extra_tensors).</summary>
    private static float[] Llama3FreqFactors(ModelConfig c, RopeScaling s)
    {
        int half = c.HeadDim / 2;
        var factors = new float[half];
        double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor, highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (int i = 0; i < half; i++)
        {
            double freq = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim), wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) factors[i] = 1;
            else if (wavelen > lowWavelen) factors[i] = (float)s.Factor;
            else
            {
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                factors[i] = (float)(1 / ((1 - smooth) / s.Factor + smooth));
            }
        }
        return factors;
    }

    /// <summary>Embedding first, then layers in numeric order, then the head (llama.cpp's converter order).</summary>
    private static (int, int, string) TensorOrderKey(string hf)
    {
        if (hf.StartsWith("model.embed_tokens")) return (0, 0, hf);
        if (hf.StartsWith("model.layers.") && int.TryParse(hf.AsSpan(13, hf.IndexOf('.', 13) - 13), out int l)) return (1, l, hf);
        return (2, 0, hf);
    }
}
