// DeepSeekSynth: writes a random-weight model with DeepSeek-V2-Lite's shape as a deepseek2 GGUF, and measures the
// DeepSeek graph's prompt and decode speed on it.
//   DeepSeekSynth write OUT.gguf [--layers 27] [--vocab 102400] [--type f32|bf16|q8_0] [--seed 1]
//   DeepSeekSynth bench MODEL.gguf [--prompt 64] [--gen 32] [--threads 0] [--mode auto|absorbed|naive]
// The Q8_0 quantizer here is ggml's quantize_row_q8_0_ref, kept local until Kernels/Quantize lands in this branch.
using System.Diagnostics;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

var opts = new Dictionary<string, string>();
for (int i = 2; i + 1 < args.Length; i += 2) opts[args[i].TrimStart('-')] = args[i + 1];
string Opt(string k, string d) => opts.TryGetValue(k, out var v) ? v : d;
if (args.Length < 2) { Console.Error.WriteLine("usage: DeepSeekSynth write OUT.gguf [--layers N] [--vocab N] [--type f32|bf16|q8_0] | bench MODEL.gguf [--prompt N] [--gen N] [--threads N] [--mode auto|absorbed|naive]"); return 2; }

if (args[0] == "write") { Write(args[1], int.Parse(Opt("layers", "27")), int.Parse(Opt("vocab", "102400")), Opt("type", "q8_0"), int.Parse(Opt("seed", "1"))); return 0; }
if (args[0] == "bench") { Bench(args[1], int.Parse(Opt("prompt", "64")), int.Parse(Opt("gen", "32")), int.Parse(Opt("threads", "0")), Opt("mode", "auto")); return 0; }
Console.Error.WriteLine($"unknown command {args[0]}"); return 2;

static void Write(string path, int layers, int vocab, string type, int seed)
{
    // DeepSeek-V2-Lite (config.json): hidden 2048, 16 heads, no q LoRA, kv_lora 512, nope 128, rope 64, v 128,
    // dense 10944 in layer 0, then 64 routed experts x 1408 (top 6, softmax, unnormalised, factor 1) + 2 shared.
    const int hidden = 2048, heads = 16, kvl = 512, nope = 128, rope = 64, v = 128, inter = 10944, moe = 1408, experts = 64, shared = 2;
    var dt = type switch { "f32" => DType.F32, "bf16" => DType.BF16, "q8_0" => DType.Q8_0, _ => throw new ArgumentException($"--type {type}") };
    var w = new GgufWriter();
    const string a = "deepseek2.";
    w.Add("general.architecture", "deepseek2").Add("general.name", "synthetic DeepSeek-V2-Lite shape (random weights)")
     .Add(a + "block_count", (uint)layers).Add(a + "context_length", 163840u).Add(a + "embedding_length", (uint)hidden)
     .Add(a + "feed_forward_length", (uint)inter).Add(a + "attention.head_count", (uint)heads).Add(a + "attention.head_count_kv", (uint)heads)
     .Add(a + "rope.freq_base", 10000f).Add(a + "attention.layer_norm_rms_epsilon", 1e-6f).Add(a + "expert_used_count", 6u)
     .Add(a + "leading_dense_block_count", 1u).Add(a + "vocab_size", (uint)vocab).Add(a + "attention.kv_lora_rank", (uint)kvl)
     .Add(a + "attention.key_length", (uint)(nope + rope)).Add(a + "attention.value_length", (uint)v)
     .Add(a + "expert_feed_forward_length", (uint)moe).Add(a + "expert_count", (uint)experts).Add(a + "expert_shared_count", (uint)shared)
     .Add(a + "expert_weights_scale", 1f).Add(a + "expert_weights_norm", false).Add(a + "expert_gating_func", 1u)
     .Add(a + "rope.dimension_count", (uint)rope).Add(a + "rope.scaling.type", "yarn").Add(a + "rope.scaling.factor", 40f)
     .Add(a + "rope.scaling.original_context_length", 4096u).Add(a + "rope.scaling.yarn_log_multiplier", 0.0707f);
    var rng = new Random(seed);
    void Mat(string name, long[] shape, DType t)
    {
        long rows = 1; for (int i = 0; i < shape.Length - 1; i++) rows *= shape[i];
        int cols = (int)shape[^1];
        float std = 1f / MathF.Sqrt(cols);
        w.AddTensor(name, t, shape, t.ByteCount(rows * cols), s =>
        {
            var row = new float[cols];
            var bytes = new byte[t.ByteCount(cols)];
            for (long r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++) row[c] = (rng.NextSingle() * 2 - 1) * 1.7f * std;
                Encode(t, row, bytes);
                s.Write(bytes);
            }
        });
    }
    void Norm(string name, int n) => w.AddTensor(name, DType.F32, [n], n * 4L, s => { for (int i = 0; i < n; i++) s.Write(BitConverter.GetBytes(1f)); });
    Mat("token_embd.weight", [vocab, hidden], dt);
    Norm("output_norm.weight", hidden);
    Mat("output.weight", [vocab, hidden], dt);
    for (int l = 0; l < layers; l++)
    {
        string b = $"blk.{l}.";
        Norm(b + "attn_norm.weight", hidden); Norm(b + "ffn_norm.weight", hidden); Norm(b + "attn_kv_a_norm.weight", kvl);
        Mat(b + "attn_q.weight", [heads * (nope + rope), hidden], dt);
        Mat(b + "attn_kv_a_mqa.weight", [kvl + rope, hidden], dt);
        Mat(b + "attn_kv_b.weight", [heads * (nope + v), kvl], dt);
        Mat(b + "attn_output.weight", [hidden, heads * v], dt);
        if (l == 0)
        {
            Mat(b + "ffn_gate.weight", [inter, hidden], dt); Mat(b + "ffn_up.weight", [inter, hidden], dt); Mat(b + "ffn_down.weight", [hidden, inter], dt);
            continue;
        }
        Mat(b + "ffn_gate_inp.weight", [experts, hidden], DType.F32);
        Mat(b + "ffn_gate_exps.weight", [experts, moe, hidden], dt);
        Mat(b + "ffn_up_exps.weight", [experts, moe, hidden], dt);
        Mat(b + "ffn_down_exps.weight", [experts, hidden, moe], dt);
        Mat(b + "ffn_gate_shexp.weight", [shared * moe, hidden], dt);
        Mat(b + "ffn_up_shexp.weight", [shared * moe, hidden], dt);
        Mat(b + "ffn_down_shexp.weight", [hidden, shared * moe], dt);
    }
    var sw = Stopwatch.StartNew();
    w.Write(path);
    Console.WriteLine($"wrote {path}: {new FileInfo(path).Length / 1e9:F2} GB, {layers} layers, {type}, {sw.Elapsed.TotalSeconds:F1} s");
}

static void Encode(DType t, float[] x, byte[] o)
{
    switch (t)
    {
        case DType.F32: Buffer.BlockCopy(x, 0, o, 0, x.Length * 4); break;
        case DType.BF16:
            for (int i = 0; i < x.Length; i++)
            {
                uint bits = BitConverter.SingleToUInt32Bits(x[i]);
                bits += 0x7FFF + ((bits >> 16) & 1); // round to nearest even
                o[2 * i] = (byte)(bits >> 16); o[2 * i + 1] = (byte)(bits >> 24);
            }
            break;
        case DType.Q8_0:
            // ggml-quants.c quantize_row_q8_0_ref: d = max|x| / 127 per 32 values, q = round(x / d)
            for (int blk = 0; blk < x.Length / 32; blk++)
            {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[blk * 32 + j]));
                float d = amax / 127, id = d != 0 ? 1 / d : 0;
                BitConverter.TryWriteBytes(o.AsSpan(blk * 34, 2), BitConverter.HalfToUInt16Bits((Half)d));
                for (int j = 0; j < 32; j++) o[blk * 34 + 2 + j] = (byte)(sbyte)MathF.Round(x[blk * 32 + j] * id);
            }
            break;
        default: throw new NotSupportedException(t.ToString());
    }
}

static void Bench(string path, int prompt, int gen, int threads, string mode)
{
    if (threads > 0) WorkerPool.Configure(threads);
    var load = Stopwatch.StartNew();
    using var m = DeepSeekGguf.Open(path);
    m.MlaMode = Enum.Parse<MlaMode>(mode, ignoreCase: true);
    Console.WriteLine($"loaded {path} in {load.Elapsed.TotalSeconds:F1} s: {m.Config.NumLayers} layers, KV cache {m.KvBytesPerToken} bytes/token, threads {WorkerPool.Shared.ThreadCount}, mode {m.MlaMode}");
    using var s = m.NewSession(prompt + gen + 1);
    var rng = new Random(7);
    var tokens = Enumerable.Range(0, prompt).Select(_ => rng.Next(m.Config.VocabSize)).ToArray();
    var logits = new float[m.Config.VocabSize];
    var sw = Stopwatch.StartNew();
    s.Forward(tokens, logits);
    double pp = sw.Elapsed.TotalSeconds;
    sw.Restart();
    for (int i = 0; i < gen; i++)
    {
        int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
        s.Forward([next], logits);
    }
    double tg = sw.Elapsed.TotalSeconds;
    Console.WriteLine($"prompt {prompt} tokens: {prompt / pp:F2} tokens/s ({pp:F2} s); decode {gen} tokens: {gen / tg:F2} tokens/s ({tg / gen * 1000:F1} ms/token)");
}
