using System.Runtime.InteropServices;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tools;

/// <summary>
/// Writes a GGUF with llama.cpp's tensor names, the engine's GGUF metadata for the shape (GgufExport) and random weights.
/// Norm weights are 1 and F32 (as llama.cpp keeps them); matrices get uniform values scaled by 1/sqrt(cols) so
/// activations stay finite through all layers; the router of MoE layers stays F32 like llama.cpp's ffn_gate_inp.
/// </summary>
public static class SyntheticWriter
{
    /// <param name="mtp">deepseek2: one multi-token-prediction layer after the main ones (block_count + 1 and
    /// nextn_predict_layers = 1; its block as the last layer's, plus blk.N.nextn.{eh_proj,enorm,hnorm,shared_head_norm};
    /// embedding and head are the main model's, which llama.cpp allows).</param>
    /// <param name="kM">llama.cpp's Q4_K_M or Q5_K_M choice of types (dense shapes; <paramref name="type"/> Q4_K or Q5_K): src/llama-quant.cpp,
    /// llama_tensor_get_type, gives output.weight Q6_K, and attn_v and ffn_down Q6_K in the layers its use_more_bits
    /// picks (the first and last eighth and every third between; for a dense model the attn_v and ffn_down counters
    /// are the layer index), every other matrix <paramref name="type"/>. What Ollama's and the hub's Q4_K_M files of the distills hold.</param>
    public static long Write(ModelShape s, DType type, string path, ulong seed, List<(string key, object value)>? vocabulary = null, TensorMix? mix = null, bool mtp = false, bool kM = false)
    {
        if (mtp && s.Arch != "deepseek2") throw new ArgumentException($"--mtp: {s.Name} is not a DeepSeek shape");
        if (kM && (s.Arch == "deepseek2" || type is not (DType.Q4_K or DType.Q5_K) || mix != null)) throw new ArgumentException($"--type {type}_M: {s.Name} is not a dense shape");
        static bool MoreBits(int i, int n) => i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
        DType MoreBitsType(int l) => kM && MoreBits(l, s.Layers) ? DType.Q6_K : type;
        var m = mix ?? TensorMix.Uniform(type);
        // general.file_type names the routed experts' type (most of the bytes) where llama.h has one for it
        DType fileType = mix == null ? type : Supported(() => GgufExport.FileType(mix.Experts)) ? mix.Experts : mix.Attention;
        int nextn = mtp ? 1 : 0;
        var w = GgufExport.CreateWriter(s.ToConfig() with { NumLayers = s.Layers + nextn }, fileType, $"synthetic {s.Name}", hasSelectionBias: s.V3Routing, s.Name);
        if (mtp) w.Add($"{s.Arch}.nextn_predict_layers", 1u);
        foreach (var (k, v) in vocabulary ?? []) w.Add(k, v);
        string a = s.Arch;
        bool ds = a == "deepseek2";
        ulong state = seed | 1;
        void Matrix(string name, int rows, int cols, DType t) => AddMatrix(w, name, rows, cols, t, ref state, mix != null);
        void Ones(string name, int n) => w.AddTensor(name, DType.F32, [n], MemoryMarshal.AsBytes(Enumerable.Repeat(1f, n).ToArray().AsSpan()).ToArray());

        Matrix("token_embd.weight", s.Vocab, s.Hidden, m.Embedding);
        for (int l = 0; l < s.Layers + nextn; l++)
        {
            string p = $"blk.{l}.";
            if (l == s.Layers)
            {
                Matrix(p + "nextn.eh_proj.weight", s.Hidden, 2 * s.Hidden, m.Attention);
                Ones(p + "nextn.enorm.weight", s.Hidden);
                Ones(p + "nextn.hnorm.weight", s.Hidden);
                Ones(p + "nextn.shared_head_norm.weight", s.Hidden);
            }
            Ones(p + "attn_norm.weight", s.Hidden);
            Ones(p + "ffn_norm.weight", s.Hidden);
            if (ds)
            {
                int qk = s.Nope + s.Rope;
                if (s.QLoraRank is int q)
                {
                    Matrix(p + "attn_q_a.weight", q, s.Hidden, m.Attention);
                    Ones(p + "attn_q_a_norm.weight", q);
                    Matrix(p + "attn_q_b.weight", s.Heads * qk, q, m.Attention);
                }
                else Matrix(p + "attn_q.weight", s.Heads * qk, s.Hidden, m.Attention);
                Matrix(p + "attn_kv_a_mqa.weight", s.KvLoraRank + s.Rope, s.Hidden, m.Attention);
                Ones(p + "attn_kv_a_norm.weight", s.KvLoraRank);
                Matrix(p + "attn_kv_b.weight", s.Heads * (s.Nope + s.VDim), s.KvLoraRank, m.Attention);
                Matrix(p + "attn_output.weight", s.Hidden, s.Heads * s.VDim, m.Attention);
                if (l < s.LeadingDense) DenseFfn(p, s.Ffn);
                else
                {
                    Matrix(p + "ffn_gate_inp.weight", s.Experts, s.Hidden, DType.F32);
                    if (s.V3Routing) w.AddTensor(p + "exp_probs_b.bias", DType.F32, [s.Experts], new byte[s.Experts * 4]); // selection bias 0
                    Stacked(p + "ffn_gate_exps.weight", s.Experts, s.ExpertFfn, s.Hidden);
                    Stacked(p + "ffn_up_exps.weight", s.Experts, s.ExpertFfn, s.Hidden);
                    Stacked(p + "ffn_down_exps.weight", s.Experts, s.Hidden, s.ExpertFfn);
                    int sh = s.SharedExperts * s.ExpertFfn;
                    Matrix(p + "ffn_gate_shexp.weight", sh, s.Hidden, m.Shared);
                    Matrix(p + "ffn_up_shexp.weight", sh, s.Hidden, m.Shared);
                    Matrix(p + "ffn_down_shexp.weight", s.Hidden, sh, m.Shared);
                }
            }
            else
            {
                int hd = s.Hidden / s.Heads;
                Matrix(p + "attn_q.weight", s.Heads * hd, s.Hidden, type);
                Matrix(p + "attn_k.weight", s.KvHeads * hd, s.Hidden, type);
                Matrix(p + "attn_v.weight", s.KvHeads * hd, s.Hidden, MoreBitsType(l));
                if (a == "qwen2")
                {
                    w.AddTensor(p + "attn_q.bias", DType.F32, [s.Heads * hd], new byte[s.Heads * hd * 4]);
                    w.AddTensor(p + "attn_k.bias", DType.F32, [s.KvHeads * hd], new byte[s.KvHeads * hd * 4]);
                    w.AddTensor(p + "attn_v.bias", DType.F32, [s.KvHeads * hd], new byte[s.KvHeads * hd * 4]);
                }
                Matrix(p + "attn_output.weight", s.Hidden, s.Heads * hd, type);
                DenseFfn(p, s.Ffn, MoreBitsType(l));
            }
        }
        Ones("output_norm.weight", s.Hidden);
        if (!s.Tied) Matrix("output.weight", s.Vocab, s.Hidden, kM ? DType.Q6_K : m.Output);
        w.Write(path);
        return new FileInfo(path).Length;

        void DenseFfn(string p, int ffn, DType? down = null)
        {
            Matrix(p + "ffn_gate.weight", ffn, s.Hidden, m.Dense);
            Matrix(p + "ffn_up.weight", ffn, s.Hidden, m.Dense);
            Matrix(p + "ffn_down.weight", s.Hidden, ffn, down ?? m.Dense);
        }
        void Stacked(string name, int n, int rows, int cols)
        {
            long per = m.Experts.ByteCount((long)rows * cols);
            ulong st = state; state = state * 6364136223846793005UL + 1442695040888963407UL;
            w.AddTensor(name, m.Experts, [n, rows, cols], per * n, stream =>
            {
                ulong local = st | 1;
                for (int e = 0; e < n; e++) stream.Write(RandomRows(rows, cols, m.Experts, ref local, mix != null));
            });
        }
    }

    private static bool Supported(Func<uint> f)
    {
        try { f(); return true; }
        catch (NotSupportedException) { return false; }
    }

    private static void AddMatrix(GgufWriter w, string name, int rows, int cols, DType type, ref ulong state, bool randomBlocks)
    {
        ulong st = state | 1; state = state * 6364136223846793005UL + 1442695040888963407UL;
        w.AddTensor(name, type, [rows, cols], type.ByteCount((long)rows * cols), stream =>
        {
            ulong local = st;
            // Stream in slabs of rows to bound memory for the 150k-row embedding.
            for (int r0 = 0; r0 < rows; r0 += 4096)
                stream.Write(RandomRows(Math.Min(4096, rows - r0), cols, type, ref local, randomBlocks));
        });
    }

    /// <summary>rows x cols random values in [-1, 1) / sqrt(cols), quantized to <paramref name="type"/>, rows in parallel.</summary>
    internal static byte[] RandomRows(int rows, int cols, DType type, ref ulong state, bool randomBlocks = false)
    {
        long rowBytes = type.ByteCount(cols);
        var result = new byte[rowBytes * rows];
        ulong baseSeed = state; state = state * 6364136223846793005UL + 1442695040888963407UL;
        float scale = 1f / MathF.Sqrt(cols);
        // No quantizer for the i-quants (they need an importance matrix), and R1's 11 G expert weights per layer would
        // take hours through the reference quantizers: random valid blocks of the same RMS as the uniform values,
        // 1/sqrt(3 cols). Dynamic mixes (randomBlocks) write every quantized matrix that way.
        if (randomBlocks && type.IsQuantized() || IQuantRandom.Handles(type))
        {
            Parallel.For(0, rows, r =>
            {
                ulong x = (baseSeed ^ ((ulong)r * 0x9E3779B97F4A7C15UL)) | 1;
                RandomBlocks(type, result.AsSpan((int)(r * rowBytes), (int)rowBytes), ref x, scale / MathF.Sqrt(3));
            });
            return result;
        }
        Parallel.For(0, rows, () => new float[cols], (r, _, buf) =>
        {
            ulong x = (baseSeed ^ ((ulong)r * 0x9E3779B97F4A7C15UL)) | 1;
            for (int c = 0; c < cols; c++)
            {
                x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
                buf[c] = ((x * 0x2545F4914F6CDD1DUL >> 40) / 8388608f - 1f) * scale;
            }
            Quantize.Row(type, buf, result.AsSpan((int)(r * rowBytes), (int)rowBytes));
            return buf;
        }, _ => { });
        return result;
    }

    /// <summary>
    /// Random valid blocks of <paramref name="type"/> with elements of RMS about <paramref name="rms"/>: random bytes with
    /// the f16 super-block scales set (layouts: ggml-common.h). Q2_K (scales | mins << 4, 2-bit q, d, dmin: x =
    /// d·sc·q − dmin·m) and Q4_K (6-bit scales and mins, 4-bit q, d and dmin first) get dmin = d·(mean q), which
    /// centres the elements; Q6_K (6-bit q − 32, int8 scales, d last) only d; the i-quants: IQuantRandom.
    /// The RMS constants are those of the uniform bytes (Q2_K ≈ 13.9·d, Q4_K ≈ 258·d, Q6_K ≈ 1365·d).
    /// </summary>
    private static void RandomBlocks(DType type, Span<byte> row, ref ulong x, float rms)
    {
        if (IQuantRandom.Handles(type)) { IQuantRandom.Fill(type, row, ref x, rms); return; }
        for (int i = 0; i < row.Length; i++)
        {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            row[i] = (byte)(x * 0x2545F4914F6CDD1DUL >> 56);
        }
        var (size, dAt, dminAt, unit, qMean) = type switch
        {
            DType.Q2_K => (84, 80, 82, 13.9f, 1.5f),
            DType.Q4_K => (144, 0, 2, 258f, 7.5f),
            DType.Q6_K => (210, 208, -1, 1360f, 0f),
            _ => throw new NotSupportedException($"random {type} blocks"),
        };
        ushort d = BitConverter.HalfToUInt16Bits((Half)(rms / unit)), dmin = BitConverter.HalfToUInt16Bits((Half)(rms / unit * qMean));
        for (int b = 0; b + size <= row.Length; b += size)
        {
            BitConverter.TryWriteBytes(row.Slice(b + dAt, 2), d);
            if (dminAt >= 0) BitConverter.TryWriteBytes(row.Slice(b + dminAt, 2), dmin);
        }
    }
}
