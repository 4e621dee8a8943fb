using System.Text.Json;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// A random tiny DeepSeek-V4 checkpoint in the released layout (config keys of DeepSeek-V4-Flash's config.json, tensor
/// names of its safetensors: <c>layers.N.attn.*</c>, <c>layers.N.ffn.*</c>, <c>embed</c>, <c>head</c>, <c>hc_head_*</c>),
/// with the layer pattern, widths and storage chosen by the test: routed experts FP4 (I8 e2m1 pairs + F8_E8M0 scales
/// per 32 inputs), chosen linears FP8 e4m3 with an E8M0 scale per 128x128 block ("….scale"), the rest F32.
/// <see cref="Values"/> keeps every tensor's real (dequantized) values for the float64 reference.
/// </summary>
public sealed class TinyDeepSeekV4
{
    public int Vocab = 211, Dim = 64, Heads = 4, HeadDim = 32, Rope = 8, QLora = 24, OGroups = 2, OLora = 12, Window = 5;
    public int[] Ratios = [16, 4, 0];
    public int IndexHeads = 3, IndexHeadDim = 16, IndexTopk = 3;
    public int Experts = 6, TopK = 2, MoeInter = 32, HashLayers = 1, Hc = 3, SinkhornIters = 20;
    public double RopeTheta = 10000, CompressTheta = 40000, YarnFactor = 4, SwigluLimit = 1.5, RouteScale = 1.5, Eps = 1e-6, HcEps = 1e-6;
    public int YarnOriginal = 64;
    public string ScoringFunc = "sqrtsoftplus";
    /// <summary>Linears stored as FP8 with E8M0 block scales (suffixes of their names, e.g. "attn.wq_b").</summary>
    public string[] Fp8 = ["attn.wq_b", "attn.wo_b", "shared_experts.w2"];
    public int Seed = 7;
    /// <summary>Tensors left out of the file, and an expert id written over tid2eid's first entry (bad-input tests).</summary>
    public HashSet<string> Omit = [];
    public long? FirstHashExpert;

    public readonly Dictionary<string, double[]> Values = [];
    public readonly Dictionary<string, int[]> Tables = [];
    private readonly List<(string, string, long[], byte[])> _tensors = [];
    private Random _rng = null!;

    public string ConfigJson() => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["architectures"] = new[] { "DeepseekV4ForCausalLM" }, ["model_type"] = "deepseek_v4", ["vocab_size"] = Vocab,
        ["hidden_size"] = Dim, ["num_hidden_layers"] = Ratios.Length, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = 1,
        ["head_dim"] = HeadDim, ["qk_rope_head_dim"] = Rope, ["q_lora_rank"] = QLora, ["o_groups"] = OGroups, ["o_lora_rank"] = OLora,
        ["sliding_window"] = Window, ["compress_ratios"] = Ratios, ["compress_rope_theta"] = CompressTheta, ["rope_theta"] = RopeTheta,
        ["rope_scaling"] = new Dictionary<string, object> { ["type"] = "yarn", ["factor"] = YarnFactor, ["original_max_position_embeddings"] = YarnOriginal, ["beta_fast"] = 32, ["beta_slow"] = 1 },
        ["index_n_heads"] = IndexHeads, ["index_head_dim"] = IndexHeadDim, ["index_topk"] = IndexTopk,
        ["n_routed_experts"] = Experts, ["n_shared_experts"] = 1, ["num_experts_per_tok"] = TopK, ["moe_intermediate_size"] = MoeInter,
        ["num_hash_layers"] = HashLayers, ["scoring_func"] = ScoringFunc, ["routed_scaling_factor"] = RouteScale, ["norm_topk_prob"] = true,
        ["swiglu_limit"] = SwigluLimit, ["hc_mult"] = Hc, ["hc_sinkhorn_iters"] = SinkhornIters, ["hc_eps"] = HcEps, ["rms_norm_eps"] = Eps,
        ["expert_dtype"] = "fp4", ["max_position_embeddings"] = 256, ["tie_word_embeddings"] = false, ["num_nextn_predict_layers"] = 0,
        ["bos_token_id"] = 0, ["eos_token_id"] = 1,
    });

    /// <summary>Writes config.json and model.safetensors into <paramref name="dir"/>.</summary>
    public void Write(string dir)
    {
        _rng = new Random(Seed);
        Values.Clear(); Tables.Clear(); _tensors.Clear();
        int hcDim = Hc * Dim, mix = (2 + Hc) * Hc;
        Plain("embed.weight", [Vocab, Dim], 1.0);
        Plain("head.weight", [Vocab, Dim], 1 / Math.Sqrt(Dim));
        Norm("norm.weight", Dim);
        Plain("hc_head_fn", [Hc, hcDim], 1 / Math.Sqrt(hcDim));
        Plain("hc_head_base", [Hc], 1.0);
        Plain("hc_head_scale", [1], 1.0);
        for (int l = 0; l < Ratios.Length; l++)
        {
            string p = $"layers.{l}.";
            Norm(p + "attn_norm.weight", Dim);
            Norm(p + "ffn_norm.weight", Dim);
            foreach (var half in new[] { "hc_attn_", "hc_ffn_" })
            {
                Plain(p + half + "fn", [mix, hcDim], 1 / Math.Sqrt(hcDim));
                Plain(p + half + "base", [mix], 1.0);
                Plain(p + half + "scale", [3], 1.0);
            }
            string a = p + "attn.";
            Plain(a + "attn_sink", [Heads], 1.0);
            Linear(a + "wq_a", QLora, Dim);
            Norm(a + "q_norm.weight", QLora);
            Linear(a + "wq_b", Heads * HeadDim, QLora);
            Linear(a + "wkv", HeadDim, Dim);
            Norm(a + "kv_norm.weight", HeadDim);
            Linear(a + "wo_a", OGroups * OLora, Heads * HeadDim / OGroups);
            Linear(a + "wo_b", Dim, OGroups * OLora);
            int r = Ratios[l];
            if (r > 0) Compressor(a + "compressor.", r, HeadDim);
            if (r == 4)
            {
                Linear(a + "indexer.wq_b", IndexHeads * IndexHeadDim, QLora);
                Linear(a + "indexer.weights_proj", IndexHeads, Dim);
                Compressor(a + "indexer.compressor.", r, IndexHeadDim);
            }
            string f = p + "ffn.";
            Plain(f + "gate.weight", [Experts, Dim], 1 / Math.Sqrt(Dim));
            if (l < HashLayers)
            {
                var table = new int[Vocab * TopK];
                for (int t = 0; t < Vocab; t++)
                {
                    var ids = Enumerable.Range(0, Experts).OrderBy(_ => _rng.Next()).Take(TopK).ToArray();
                    ids.CopyTo(table, t * TopK);
                }
                Tables[f + "gate.tid2eid"] = table;
                var ids64 = table.Select(v => (long)v).ToArray();
                if (FirstHashExpert is { } bad) ids64[0] = bad;
                _tensors.Add((f + "gate.tid2eid", "I64", [Vocab, TopK], ids64.SelectMany(BitConverter.GetBytes).ToArray()));
            }
            else Plain(f + "gate.bias", [Experts], 0.3);
            for (int e = 0; e < Experts; e++)
            {
                Fp4($"{f}experts.{e}.w1", MoeInter, Dim);
                Fp4($"{f}experts.{e}.w2", Dim, MoeInter);
                Fp4($"{f}experts.{e}.w3", MoeInter, Dim);
            }
            Linear(f + "shared_experts.w1", MoeInter, Dim);
            Linear(f + "shared_experts.w2", Dim, MoeInter);
            Linear(f + "shared_experts.w3", MoeInter, Dim);
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), ConfigJson());
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), _tensors.Where(t => !Omit.Contains(t.Item1)).ToList());
    }

    private double Uniform(double a) => (2 * _rng.NextDouble() - 1) * a;

    private void Plain(string name, long[] shape, double scale)
    {
        var v = new double[shape.Aggregate(1L, (x, y) => x * y)];
        for (int i = 0; i < v.Length; i++) v[i] = (float)Uniform(scale);
        Add(name, shape, v);
    }

    private void Norm(string name, int n)
    {
        var v = new double[n];
        for (int i = 0; i < n; i++) v[i] = (float)(1 + Uniform(0.3));
        Add(name, [n], v);
    }

    private void Add(string name, long[] shape, double[] v)
    {
        Values[name] = v;
        _tensors.Add((name, "F32", shape, v.SelectMany(x => BitConverter.GetBytes((float)x)).ToArray()));
    }

    private void Compressor(string p, int ratio, int d)
    {
        int w = (ratio == 4 ? 2 : 1) * d;
        Plain(p + "ape", [ratio, w], 0.5);
        Linear(p + "wkv", w, Dim);
        Linear(p + "wgate", w, Dim);
        Norm(p + "norm.weight", d);
    }

    /// <summary>A linear [rows, cols]: F32, or FP8 e4m3 codes with E8M0 block scales when its name ends in one of <see cref="Fp8"/>.</summary>
    private void Linear(string prefix, int rows, int cols)
    {
        if (!Fp8.Any(s => prefix.EndsWith(s))) { Plain(prefix + ".weight", [rows, cols], 1 / Math.Sqrt(cols)); return; }
        int sr = (rows + 127) / 128, sc = (cols + 127) / 128;
        int fold = (int)Math.Round(Math.Log2(8 / Math.Sqrt(cols)));               // ~1/√cols overall, as a power of two
        var scaleBytes = new byte[sr * sc];
        for (int i = 0; i < scaleBytes.Length; i++) scaleBytes[i] = (byte)(127 - 6 - _rng.Next(2) + fold);
        var codes = new byte[rows * cols];
        var v = new double[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                byte code;
                do code = (byte)_rng.Next(256); while ((code & 0x7F) == 0x7F || Math.Abs(E4M3(code)) > 32);
                codes[r * cols + c] = code;
                v[r * cols + c] = E4M3(code) * Math.Pow(2, scaleBytes[r / 128 * sc + c / 128] - 127);
            }
        Values[prefix + ".weight"] = v;
        _tensors.Add((prefix + ".weight", "F8_E4M3", [rows, cols], codes));
        _tensors.Add((prefix + ".scale", "F8_E8M0", [sr, sc], scaleBytes));
    }

    /// <summary>FP4 expert matrix [rows, cols]: e2m1 codes (element 2j low nibble) and an E8M0 scale per 32 inputs.</summary>
    private void Fp4(string prefix, int rows, int cols)
    {
        var codes = new byte[rows * cols / 2];
        var scales = new byte[rows * cols / 32];
        var v = new double[rows * cols];
        for (int i = 0; i < scales.Length; i++) scales[i] = (byte)(127 - 3 - _rng.Next(3));
        for (int i = 0; i < rows * cols; i++)
        {
            int code = _rng.Next(16);
            codes[i / 2] |= (byte)(i % 2 == 0 ? code : code << 4);
            v[i] = E2M1(code) * Math.Pow(2, scales[i / 32] - 127);
        }
        Values[prefix + ".weight"] = v;
        _tensors.Add((prefix + ".weight", "I8", [rows, cols / 2], codes));
        _tensors.Add((prefix + ".scale", "F8_E8M0", [rows, cols / 32], scales));
    }

    /// <summary>OCP MX v1.0 FP4 E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit; exponent 0 is subnormal (0 or 0.5).</summary>
    public static double E2M1(int code)
    {
        int e = (code >> 1) & 3, m = code & 1;
        double mag = e == 0 ? m * 0.5 : (1 + m * 0.5) * Math.Pow(2, e - 1);
        return (code & 8) != 0 ? -mag : mag;
    }

    /// <summary>float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is subnormal.</summary>
    public static double E4M3(byte code)
    {
        int e = (code >> 3) & 15, m = code & 7;
        double mag = e == 0 ? m / 8.0 * Math.Pow(2, -6) : (1 + m / 8.0) * Math.Pow(2, e - 7);
        return (code & 0x80) != 0 ? -mag : mag;
    }
}
