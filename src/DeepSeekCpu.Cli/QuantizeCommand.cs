using System.Diagnostics;
using System.Runtime.InteropServices;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Models.Llama;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;
using Architecture = DeepSeekCpu.Models.Architecture;

namespace DeepSeekCpu.Cli;

public static partial class Commands
{
    /// <summary>
    /// deepseek-cpu quantize -m MODEL --type TYPE -o OUT.gguf: writes a GGUF that llama.cpp reads, with llama.cpp's
    /// tensor names, metadata key types (convert_hf_to_gguf.py), file type code (llama.h LLAMA_FTYPE_*) and vocabulary.
    /// Matrices become TYPE (or Q8_0 when their row length is not a multiple of TYPE's block), vectors stay F32.
    /// From a Hugging Face "llama" folder the Q/K rows are permuted as llama.cpp's converter does. DeepSeek V2/V3
    /// models (HF, FP8 included, or GGUF) become "deepseek2" with stacked experts and the combined attn_kv_b; the MTP
    /// layers are left out.
    /// </summary>
    private static int QuantizeCmd(string[] args)
    {
        var a = new CliArgs("quantize", args, ["--model", "--type", "--out"], [],
            new Dictionary<string, string>(Aliases) { ["-o"] = "--out" });
        string path = a.Req("--model"), outPath = a.Req("--out");
        var (type, ftype) = a.Req("--type").ToLowerInvariant() switch
        {
            "f32" => (DType.F32, 0u), "f16" => (DType.F16, 1u), "bf16" => (DType.BF16, 32u),
            "q4_0" => (DType.Q4_0, 2u), "q4_1" => (DType.Q4_1, 3u), "q8_0" => (DType.Q8_0, 7u), "q5_0" => (DType.Q5_0, 8u),
            "q4_k" => (DType.Q4_K, 15u), "q5_k" => (DType.Q5_K, 17u), "q6_k" => (DType.Q6_K, 18u),
            var t => throw new UsageException($"quantize: --type '{t}' is unknown (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q4_k, q5_k, q6_k)"),
        };
        if (Path.GetFullPath(outPath) == Path.GetFullPath(path)) throw new UsageException("quantize: --out must differ from the input model");
        var (c, weights, format, gguf) = ModelLoader.OpenWeights(path);
        using var _ = weights;
        string arch = c.Architecture switch
        {
            Architecture.Llama => "llama",
            Architecture.Qwen2 => "qwen2",
            _ => "deepseek2",
        };
        var w = new GgufWriter();
        w.Add("general.architecture", arch).Add("general.name", Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(path)))
         .Add("general.file_type", ftype).Add("general.quantization_version", 2u);
        if (c.IsMla)
        {
            if (weights.Contains("model.layers.0.self_attn.k_b_proj.weight"))
                throw new UsageException($"quantize: {path} stores MLA's kv_b split into attn_k_b/attn_v_b; re-quantizing that layout is not supported (quantize from the Hugging Face folder or a GGUF with attn_kv_b)");
            bool bias = weights.Tensors.Keys.Any(k => k.EndsWith("mlp.gate.e_score_correction_bias"));
            foreach (var (k, v) in DeepSeekGguf.Metadata(c, bias, path)) w.Add(k, v);
        }
        else
        {
            w.Add($"{arch}.block_count", (uint)c.NumLayers).Add($"{arch}.context_length", (uint)c.MaxPositionEmbeddings)
             .Add($"{arch}.embedding_length", (uint)c.HiddenSize).Add($"{arch}.feed_forward_length", (uint)c.IntermediateSize)
             .Add($"{arch}.attention.head_count", (uint)c.NumHeads).Add($"{arch}.attention.head_count_kv", (uint)c.NumKvHeads)
             .Add($"{arch}.rope.freq_base", (float)c.RopeTheta).Add($"{arch}.attention.layer_norm_rms_epsilon", c.RmsNormEps)
             .Add($"{arch}.rope.dimension_count", (uint)c.HeadDim).Add($"{arch}.vocab_size", (uint)c.VocabSize);
            if (c.HeadDim != c.HiddenSize / c.NumHeads)
                w.Add($"{arch}.attention.key_length", (uint)c.HeadDim).Add($"{arch}.attention.value_length", (uint)c.HeadDim);
        }

        // Vocabulary: copied from a GGUF source, converted from tokenizer.json for a Hugging Face folder.
        if (gguf != null)
        {
            foreach (var (k, v) in gguf.Metadata)
                if (k.StartsWith("tokenizer.")) w.Add(k, v is long l ? (object)(uint)l : v);
        }
        else if (format == ModelFormat.HuggingFace && File.Exists(Path.Combine(path, "tokenizer.json")))
        {
            foreach (var (k, v) in GgufVocabulary.FromHuggingFace(path, c.VocabSize)) w.Add(k, v);
        }
        else if (format == ModelFormat.HuggingFace)
            Console.Error.WriteLine($"warning: {path} has no tokenizer.json: the GGUF gets no vocabulary (llama.cpp needs one to run it)");
        else throw new UsageException("quantize: a llama2.c checkpoint has no GGUF vocabulary; give a Hugging Face folder or a GGUF file");

        // llama.cpp expects its own rope layout for "llama": permute Q/K rows of HF weights (not of a llama GGUF source).
        bool permute = c.Architecture == Architecture.Llama && !c.RopeInterleaved;
        var order = weights.Tensors.Keys.OrderBy(TensorOrderKey).ToList();
        foreach (string hf in order)
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
                ?? throw new ModelFormatException($"{path}: tensor {hf} has no GGUF name");
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

        var sw = Stopwatch.StartNew();
        w.Write(outPath); // GgufWriter writes PATH.partial and renames it only when complete
        Console.Error.WriteLine($"wrote {outPath} ({new FileInfo(outPath).Length / 1e6:F1} MB, {type}) in {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>The requested type where the row length fits its blocks, else Q8_0, else F16 (llama.cpp's fallbacks).</summary>
    private static DType TargetFor(DType type, int cols) =>
        cols % type.BlockSize() == 0 ? type : cols % DType.Q8_0.BlockSize() == 0 ? DType.Q8_0 : DType.F16;

    /// <summary>(layer, expert, projection) of a routed expert's matrix "model.layers.L.mlp.experts.E.PROJ.weight".</summary>
    private static (int, int, string)? ExpertIndex(string hf)
    {
        var m = System.Text.RegularExpressions.Regex.Match(hf, @"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$");
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
    private static unsafe void WriteRows(Stream s, WeightMatrix m, DType target, int heads)
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
