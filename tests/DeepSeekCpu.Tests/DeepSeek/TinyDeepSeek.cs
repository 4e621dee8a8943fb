using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>Shape and routing of a random tiny DeepSeek model; field names follow HF config.json.</summary>
public sealed record TinySpec
{
    public string ModelType { get; init; } = "deepseek_v3";
    public int Vocab { get; init; } = 97;
    public int Hidden { get; init; } = 32;
    public int Intermediate { get; init; } = 48;
    public int MoeIntermediate { get; init; } = 16;
    public int Layers { get; init; } = 3;
    public int FirstKDense { get; init; } = 1;
    public int MoeLayerFreq { get; init; } = 1;
    public int Heads { get; init; } = 2;
    public int? QLoraRank { get; init; } = 24;
    public int KvLoraRank { get; init; } = 12;
    public int Nope { get; init; } = 8;
    public int Rope { get; init; } = 4;
    public int V { get; init; } = 6;
    public int NRouted { get; init; } = 8;
    public int NShared { get; init; } = 1;
    public int TopK { get; init; } = 2;
    public int NGroup { get; init; } = 1;
    public int TopkGroup { get; init; } = 1;
    public string TopkMethod { get; init; } = "greedy";
    public string Scoring { get; init; } = "softmax";
    public bool NormTopk { get; init; }
    public double RoutedScale { get; init; } = 1.0;
    public bool GateBias { get; init; }
    public bool Tie { get; init; }
    public double RopeTheta { get; init; } = 10000;
    public float Eps { get; init; } = 1e-6f;
    /// <summary>YaRN (factor, original_max_position_embeddings, beta_fast, beta_slow, mscale, mscale_all_dim) or null.</summary>
    public (double Factor, int Orig, double BetaFast, double BetaSlow, double Mscale, double MscaleAll)? Yarn { get; init; }
    /// <summary>Multi-token-prediction layers written after the main layers (a block plus the MTP module's own tensors).</summary>
    public int MtpLayers { get; init; }
    /// <summary>V3.2 lightning indexer (index_n_heads, index_head_dim, index_topk); IndexTopk 0: none.</summary>
    public int IndexHeads { get; init; }
    public int IndexHeadDim { get; init; }
    public int IndexTopk { get; init; }
    public int Seed { get; init; } = 1;

    public bool IsMoeLayer(int l) => NRouted > 0 && l >= FirstKDense && l % MoeLayerFreq == 0;

    public string ConfigJson()
    {
        var o = new Dictionary<string, object?>
        {
            ["model_type"] = ModelType, ["vocab_size"] = Vocab, ["hidden_size"] = Hidden, ["intermediate_size"] = Intermediate,
            ["moe_intermediate_size"] = MoeIntermediate, ["num_hidden_layers"] = Layers, ["first_k_dense_replace"] = FirstKDense,
            ["moe_layer_freq"] = MoeLayerFreq, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = Heads,
            ["n_routed_experts"] = NRouted, ["n_shared_experts"] = NShared, ["num_experts_per_tok"] = TopK,
            ["n_group"] = NGroup, ["topk_group"] = TopkGroup, ["topk_method"] = TopkMethod, ["scoring_func"] = Scoring,
            ["norm_topk_prob"] = NormTopk, ["routed_scaling_factor"] = RoutedScale, ["q_lora_rank"] = QLoraRank,
            ["kv_lora_rank"] = KvLoraRank, ["qk_nope_head_dim"] = Nope, ["qk_rope_head_dim"] = Rope, ["v_head_dim"] = V,
            ["rms_norm_eps"] = Eps, ["rope_theta"] = RopeTheta, ["max_position_embeddings"] = 4096,
            ["tie_word_embeddings"] = Tie, ["num_nextn_predict_layers"] = MtpLayers, ["bos_token_id"] = 0, ["eos_token_id"] = 1,
            ["rope_scaling"] = Yarn is { } y ? new Dictionary<string, object>
            {
                ["type"] = "yarn", ["factor"] = y.Factor, ["original_max_position_embeddings"] = y.Orig,
                ["beta_fast"] = y.BetaFast, ["beta_slow"] = y.BetaSlow, ["mscale"] = y.Mscale, ["mscale_all_dim"] = y.MscaleAll,
            } : null,
        };
        if (IndexTopk > 0) { o["index_n_heads"] = IndexHeads; o["index_head_dim"] = IndexHeadDim; o["index_topk"] = IndexTopk; }
        return JsonSerializer.Serialize(o);
    }
}

/// <summary>A tensor to write: its HF name, shape and float values (already rounded to what the file stores).</summary>
public sealed record TinyTensor(string Name, long[] Shape, float[] Values)
{
    /// <summary>How to store it: "F32", "BF16" or "F8_E4M3" (then with a "{name}_scale_inv" companion).</summary>
    public string DType { get; set; } = "F32";
    public float[]? Fp8Codes; // F8_E4M3: the float value of each stored code (before block scaling) — only for writing
    public byte[]? Fp8Bytes;
    public float[]? ScaleInv;  // [ceil(rows/128), ceil(cols/128)]
}

/// <summary>Random tiny DeepSeek models written as HF folders (config.json + model.safetensors).</summary>
public static class TinyDeepSeek
{
    /// <summary>All tensors of a random model with spec <paramref name="s"/> (HF names, F32 values).</summary>
    public static List<TinyTensor> Generate(TinySpec s)
    {
        var rng = new Random(s.Seed);
        var main = rng;
        var list = new List<TinyTensor>();
        float Gauss() => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        void Mat(string name, int rows, int cols, float scale = 1)
        {
            var v = new float[rows * cols];
            float std = scale / MathF.Sqrt(cols);
            for (int i = 0; i < v.Length; i++) v[i] = Gauss() * std;
            list.Add(new TinyTensor(name, [rows, cols], v));
        }
        void Norm(string name, int n)
        {
            var v = new float[n];
            for (int i = 0; i < n; i++) v[i] = 1 + 0.2f * Gauss();
            list.Add(new TinyTensor(name, [n], v));
        }
        Mat("model.embed_tokens.weight", s.Vocab, s.Hidden, MathF.Sqrt(s.Hidden));
        int total = s.Layers + s.MtpLayers;
        for (int l = 0; l < total; l++)
        {
            string p = $"model.layers.{l}.";
            Norm(p + "input_layernorm.weight", s.Hidden);
            Norm(p + "post_attention_layernorm.weight", s.Hidden);
            string a = p + "self_attn.";
            if (s.QLoraRank is int qr)
            {
                Mat(a + "q_a_proj.weight", qr, s.Hidden);
                Norm(a + "q_a_layernorm.weight", qr);
                Mat(a + "q_b_proj.weight", s.Heads * (s.Nope + s.Rope), qr, 2);
            }
            else Mat(a + "q_proj.weight", s.Heads * (s.Nope + s.Rope), s.Hidden, 2);
            Mat(a + "kv_a_proj_with_mqa.weight", s.KvLoraRank + s.Rope, s.Hidden, 2);
            Norm(a + "kv_a_layernorm.weight", s.KvLoraRank);
            Mat(a + "kv_b_proj.weight", s.Heads * (s.Nope + s.V), s.KvLoraRank, 2);
            Mat(a + "o_proj.weight", s.Hidden, s.Heads * s.V);
            if (s.IndexTopk > 0)
            {
                Mat(a + "indexer.wq_b.weight", s.IndexHeads * s.IndexHeadDim, s.QLoraRank!.Value, 2);
                Mat(a + "indexer.wk.weight", s.IndexHeadDim, s.Hidden, 2);
                Norm(a + "indexer.k_norm.weight", s.IndexHeadDim);
                var bias = new float[s.IndexHeadDim];
                for (int i = 0; i < bias.Length; i++) bias[i] = 0.3f * Gauss();
                list.Add(new TinyTensor(a + "indexer.k_norm.bias", [s.IndexHeadDim], bias));
                Mat(a + "indexer.weights_proj.weight", s.IndexHeads, s.Hidden, 2);
            }
            string m = p + "mlp.";
            if (s.IsMoeLayer(l))
            {
                Mat(m + "gate.weight", s.NRouted, s.Hidden, 3);
                if (s.GateBias)
                {
                    var b = new float[s.NRouted];
                    for (int i = 0; i < b.Length; i++) b[i] = 0.3f * Gauss();
                    list.Add(new TinyTensor(m + "gate.e_score_correction_bias", [s.NRouted], b));
                }
                for (int e = 0; e < s.NRouted; e++)
                {
                    Mat($"{m}experts.{e}.gate_proj.weight", s.MoeIntermediate, s.Hidden);
                    Mat($"{m}experts.{e}.up_proj.weight", s.MoeIntermediate, s.Hidden);
                    Mat($"{m}experts.{e}.down_proj.weight", s.Hidden, s.MoeIntermediate);
                }
                if (s.NShared > 0)
                {
                    int w = s.NShared * s.MoeIntermediate;
                    Mat(m + "shared_experts.gate_proj.weight", w, s.Hidden);
                    Mat(m + "shared_experts.up_proj.weight", w, s.Hidden);
                    Mat(m + "shared_experts.down_proj.weight", s.Hidden, w);
                }
            }
            else
            {
                Mat(m + "gate_proj.weight", s.Intermediate, s.Hidden);
                Mat(m + "up_proj.weight", s.Intermediate, s.Hidden);
                Mat(m + "down_proj.weight", s.Hidden, s.Intermediate);
            }
            if (l >= s.Layers)
            {
                // the MTP module's own tensors (DeepSeek-V3 README_WEIGHTS.md); embedding and head drawn anew, unlike
                // the checkpoint's copies of the main ones, so that a test sees which ones an engine reads. From their
                // own generator: the other tensors keep the values they had before these were written.
                rng = new Random(s.Seed * 7919 + l);
                Mat(p + "embed_tokens.weight", s.Vocab, s.Hidden, MathF.Sqrt(s.Hidden));
                Norm(p + "enorm.weight", s.Hidden);
                Norm(p + "hnorm.weight", s.Hidden);
                Mat(p + "eh_proj.weight", s.Hidden, 2 * s.Hidden);
                Norm(p + "shared_head.norm.weight", s.Hidden);
                Mat(p + "shared_head.head.weight", s.Vocab, s.Hidden);
                rng = main;
            }
        }
        Norm("model.norm.weight", s.Hidden);
        if (!s.Tie) Mat("lm_head.weight", s.Vocab, s.Hidden);
        return list;
    }

    /// <summary>Writes config.json and model.safetensors into a new temporary folder; returns it.</summary>
    public static string WriteFolder(TinySpec s, IReadOnlyList<TinyTensor> tensors)
    {
        string dir = Path.Combine(Path.GetTempPath(), "dscpu-tiny-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), s.ConfigJson());
        var entries = new List<(string, string, long[], byte[])>();
        foreach (var t in tensors)
        {
            switch (t.DType)
            {
                case "F32": entries.Add((t.Name, "F32", t.Shape, F32Bytes(t.Values))); break;
                case "BF16": entries.Add((t.Name, "BF16", t.Shape, Bf16Bytes(t.Values))); break;
                case "F8_E4M3":
                    entries.Add((t.Name, "F8_E4M3", t.Shape, t.Fp8Bytes!));
                    long sr = (t.Shape[0] + 127) / 128, sc = (t.Shape[1] + 127) / 128;
                    entries.Add((t.Name + "_scale_inv", "F32", [sr, sc], F32Bytes(t.ScaleInv!)));
                    break;
                default: throw new ArgumentException(t.DType);
            }
        }
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries);
        return dir;
    }

    public static Dictionary<string, float[]> ValuesByName(IEnumerable<TinyTensor> tensors) => tensors.ToDictionary(t => t.Name, t => t.Values);

    public static byte[] F32Bytes(float[] v)
    {
        var b = new byte[v.Length * 4];
        Buffer.BlockCopy(v, 0, b, 0, b.Length);
        return b;
    }

    public static byte[] Bf16Bytes(float[] v)
    {
        var b = new byte[v.Length * 2];
        for (int i = 0; i < v.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(v[i]);
            if ((bits & 0xFFFF) != 0) throw new ArgumentException("value is not representable in bf16; round it first");
            b[2 * i] = (byte)(bits >> 16); b[2 * i + 1] = (byte)(bits >> 24);
        }
        return b;
    }

    /// <summary>Rounds to the nearest bfloat16 (ties to even), returned as float32.</summary>
    public static float RoundBf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint rounded = bits + 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(rounded & 0xFFFF0000);
    }

    /// <summary>Stores every value of <paramref name="t"/> as bf16 (values rounded in place).</summary>
    public static void ToBf16(TinyTensor t)
    {
        for (int i = 0; i < t.Values.Length; i++) t.Values[i] = RoundBf16(t.Values[i]);
        t.DType = "BF16";
    }

    // ---- FP8 (float8_e4m3fn, OCP 8-bit floating point spec) -----------------------------------------------------

    /// <summary>Decodes an E4M3 code: sign, 4 exponent bits (bias 7), 3 mantissa bits; 0x7F/0xFF are NaN.</summary>
    public static double E4M3Value(int code)
    {
        int sign = code >> 7, e = (code >> 3) & 15, m = code & 7;
        if (e == 15 && m == 7) return double.NaN;
        double mag = e == 0 ? m / 8.0 * Math.Pow(2, -6) : (1 + m / 8.0) * Math.Pow(2, e - 7);
        return sign == 1 ? -mag : mag;
    }

    /// <summary>Nearest E4M3 code to x (|x| ≤ 448), by search over all finite codes.</summary>
    public static byte E4M3Encode(double x)
    {
        int best = 0; double bd = double.MaxValue;
        for (int c = 0; c < 256; c++)
        {
            double v = E4M3Value(c);
            if (double.IsNaN(v)) continue;
            double d = Math.Abs(v - x);
            if (d < bd) { bd = d; best = c; }
        }
        return (byte)best;
    }

    /// <summary>
    /// Quantizes a 2-D tensor to FP8 with one float32 scale per 128x128 block (DeepSeek-V3 weight_block_size):
    /// scale = max|block| / 448, code = e4m3(w / scale), weight_scale_inv = scale. Replaces the values by the
    /// dequantized ones (code value · scale), which is what an exact engine must compute with. With
    /// <paramref name="ue8m0"/> the scale is rounded up to a power of two, 2^ceil(log2(max/448)), as DeepSeek-V3.1's
    /// checkpoints (config quantization_config.scale_fmt "ue8m0") hold them: still float32 tensors, power-of-two values.
    /// </summary>
    public static void ToFp8(TinyTensor t, bool ue8m0 = false)
    {
        int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
        int sr = (rows + 127) / 128, sc = (cols + 127) / 128;
        var scales = new float[sr * sc];
        var codes = new byte[rows * cols];
        for (int br = 0; br < sr; br++)
            for (int bc = 0; bc < sc; bc++)
            {
                float max = 0;
                for (int r = br * 128; r < Math.Min(rows, br * 128 + 128); r++)
                    for (int c = bc * 128; c < Math.Min(cols, bc * 128 + 128); c++) max = Math.Max(max, Math.Abs(t.Values[r * cols + c]));
                float scale = max == 0 ? 1 : max / 448f;
                if (ue8m0) scale = MathF.Pow(2, MathF.Ceiling(MathF.Log2(scale)));
                scales[br * sc + bc] = scale;
                for (int r = br * 128; r < Math.Min(rows, br * 128 + 128); r++)
                    for (int c = bc * 128; c < Math.Min(cols, bc * 128 + 128); c++)
                    {
                        byte code = E4M3Encode(t.Values[r * cols + c] / scale);
                        codes[r * cols + c] = code;
                        t.Values[r * cols + c] = (float)E4M3Value(code) * scale;
                    }
            }
        t.DType = "F8_E4M3"; t.Fp8Bytes = codes; t.ScaleInv = scales;
    }
}

/// <summary>
/// Minimal safetensors writer (huggingface/safetensors README "Format"): u64 little-endian header size, JSON header
/// { name: { dtype, shape, data_offsets } }, then the tensors' bytes back to back.
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<(string Name, string DType, long[] Shape, byte[] Data)> tensors)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, dtype, shape, data) in tensors)
        {
            header[name] = new Dictionary<string, object> { ["dtype"] = dtype, ["shape"] = shape, ["data_offsets"] = new[] { offset, offset + data.Length } };
            offset += data.Length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int pad = (8 - json.Length % 8) % 8;
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)(json.Length + pad)));
        fs.Write(json);
        for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
        foreach (var t in tensors) fs.Write(t.Data);
    }
}
