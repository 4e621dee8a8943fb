using Xunit;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// Reference logits written by tools/reference/llama_ref.py (independent plain-Python implementation):
/// reference.json (prompt ids, greedy continuation) and reference_logits_f32.bin (rows x vocab, float32 LE).
/// </summary>
public sealed class ReferenceData
{
    public required int[] Prompt { get; init; }
    public required int Vocab { get; init; }
    public required float[] Logits { get; init; }   // [prompt.Length, vocab]
    public required int[] Greedy { get; init; }
    public required double GreedyMargin { get; init; }
    public required JsonElement Json { get; init; }

    public static ReferenceData Load(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "reference.json")));
        var root = doc.RootElement.Clone();
        int[] prompt = root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int vocab = root.GetProperty("vocab_size").GetInt32();
        var greedyProp = root.EnumerateObject().Single(p => p.Name.StartsWith("greedy_continuation_"));
        int[] greedy = greedyProp.Value.EnumerateArray().Select(e => e.GetInt32()).ToArray();
        byte[] raw = File.ReadAllBytes(Path.Combine(folder, "reference_logits_f32.bin"));
        Assert.Equal(prompt.Length * vocab * 4, raw.Length);
        var logits = new float[raw.Length / 4];
        for (int i = 0; i < logits.Length; i++) logits[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4));
        return new ReferenceData
        {
            Prompt = prompt, Vocab = vocab, Logits = logits, Greedy = greedy,
            GreedyMargin = root.GetProperty("greedy_min_top2_margin").GetDouble(), Json = root,
        };
    }
}

/// <summary>Drives an engine model the three ways the tests compare: batched prefill, one token at a time, greedy.</summary>
public static class Engine
{
    public static float[] Prefill(ILanguageModel m, int[] tokens)
    {
        using var s = m.NewSession(tokens.Length + 16);
        var logits = new float[tokens.Length * m.Config.VocabSize];
        s.Forward(tokens, logits, allPositions: true);
        Assert.Equal(tokens.Length, s.Position);
        return logits;
    }

    public static float[] Stepwise(ILanguageModel m, int[] tokens)
    {
        int v = m.Config.VocabSize;
        using var s = m.NewSession(tokens.Length + 16);
        var logits = new float[tokens.Length * v];
        for (int i = 0; i < tokens.Length; i++) s.Forward(tokens.AsSpan(i, 1), logits.AsSpan(i * v, v));
        return logits;
    }

    /// <summary>Prefill in chunks of the given sizes (each chunk sees the cache of the previous ones).</summary>
    public static float[] Chunked(ILanguageModel m, int[] tokens, params int[] chunks)
    {
        int v = m.Config.VocabSize;
        Assert.Equal(tokens.Length, chunks.Sum());
        using var s = m.NewSession(tokens.Length + 16);
        var logits = new float[tokens.Length * v];
        int at = 0;
        foreach (int c in chunks)
        {
            s.Forward(tokens.AsSpan(at, c), logits.AsSpan(at * v, c * v), allPositions: true);
            at += c;
        }
        return logits;
    }

    public static int[] Greedy(ILanguageModel m, int[] prompt, int n)
    {
        int v = m.Config.VocabSize;
        using var s = m.NewSession(prompt.Length + n + 16);
        var logits = new float[v];
        s.Forward(prompt, logits);
        var outIds = new int[n];
        for (int i = 0; i < n; i++)
        {
            outIds[i] = ArgMax(logits);
            if (i + 1 < n) s.Forward([outIds[i]], logits);
        }
        return outIds;
    }

    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>sqrt(Σ (e − a)²) / sqrt(Σ e²): the error of quantized logits relative to the reference's size.</summary>
    public static double RelativeRms(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++) { double d = expected[i] - actual[i]; err += d * d; norm += (double)expected[i] * expected[i]; }
        return Math.Sqrt(err / norm);
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            m = Math.Max(m, d);
        }
        return m;
    }

    /// <summary>Asserts max |a - b| ≤ tol and says where the worst element is when it is not.</summary>
    public static double AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tol, int vocab, string what)
    {
        double worst = MaxAbsDiff(expected, actual);
        if (!(worst <= tol))
        {
            int at = 0;
            for (int i = 0; i < expected.Length; i++)
                if (!(Math.Abs((double)expected[i] - actual[i]) < worst)) { at = i; break; }
            Assert.Fail($"{what}: max |engine - reference| = {worst:G4} > {tol:G3} at row {at / vocab}, token {at % vocab} (reference {expected[at]}, engine {actual[at]})");
        }
        Console.Error.WriteLine($"[maxdiff] {what}: {worst:G4}");
        return worst;
    }
}

/// <summary>
/// A test-side safetensors reader (independent of the engine's): tensor name → (shape, float32 values), F32/BF16.
/// </summary>
public static class TestSafetensors
{
    public static Dictionary<string, (long[] shape, float[] values)> Read(string path)
    {
        byte[] all = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(all);
        using var doc = JsonDocument.Parse(all.AsMemory(8, (int)n));
        var result = new Dictionary<string, (long[], float[])>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            string dtype = p.Value.GetProperty("dtype").GetString()!;
            long[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long begin = p.Value.GetProperty("data_offsets")[0].GetInt64();
            int count = (int)shape.Aggregate(1L, (a, b) => a * b);
            var v = new float[count];
            int baseOff = 8 + (int)n + (int)begin;
            for (int i = 0; i < count; i++)
                v[i] = dtype switch
                {
                    "F32" => BinaryPrimitives.ReadSingleLittleEndian(all.AsSpan(baseOff + 4 * i)),
                    "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(all.AsSpan(baseOff + 2 * i)) << 16),
                    _ => throw new NotSupportedException(dtype),
                };
            result[p.Name] = (shape, v);
        }
        return result;
    }

    /// <summary>Writes F32 tensors with a caller-supplied header transform (to craft malformed files).</summary>
    public static void WriteF32(string path, IEnumerable<(string name, long[] shape, float[] values)> tensors, Func<string, string>? editHeader = null)
    {
        var header = new StringBuilder("{");
        var data = new MemoryStream();
        bool first = true;
        foreach (var (name, shape, values) in tensors)
        {
            long begin = data.Length;
            foreach (var f in values) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteSingleLittleEndian(b, f); data.Write(b); }
            if (!first) header.Append(',');
            first = false;
            header.Append($"\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{begin},{data.Length}]}}");
        }
        header.Append('}');
        string h = editHeader?.Invoke(header.ToString()) ?? header.ToString();
        while ((Encoding.UTF8.GetByteCount(h) & 7) != 0) h += " ";
        byte[] hb = Encoding.UTF8.GetBytes(h);
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, hb.Length);
        fs.Write(len); fs.Write(hb); data.Position = 0; data.CopyTo(fs);
    }
}

/// <summary>
/// Converts a tiny HF folder to GGUF the way llama.cpp's convert_hf_to_gguf.py does (names from gguf-py
/// constants.py TENSOR_NAMES; llama Q/K rows permuted by LlamaModel.permute; 1-D tensors kept F32), with the
/// engine's <see cref="GgufWriter"/>. The tensor data are encoded here, not by the engine.
/// </summary>
public static class TinyGguf
{
    public static readonly DType[] Types = [DType.F32, DType.F16, DType.BF16, DType.Q8_0];

    /// <param name="ropeFreqsOnly">llama3 scaling stored only as the rope_freqs tensor (as the converter does), without the
    /// rope.scaling.* metadata keys.</param>
    public static string Convert(string hfFolder, DType type, string outPath, bool ropeFreqsOnly = false, bool skipPermute = false, Func<float[], float[]>? matrixTransform = null)
    {
        using var cfgDoc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(hfFolder, "config.json")));
        var c = cfgDoc.RootElement;
        string arch = c.GetProperty("model_type").GetString()!;   // "llama", "qwen2" or "qwen3": same names in GGUF
        int hidden = c.GetProperty("hidden_size").GetInt32(), heads = c.GetProperty("num_attention_heads").GetInt32();
        int kvHeads = c.GetProperty("num_key_value_heads").GetInt32(), layers = c.GetProperty("num_hidden_layers").GetInt32();
        // head_dim from the config when given (Qwen3: may differ from hidden / heads; convert_hf_to_gguf.py then writes
        // attention.key_length / value_length)
        int hd = c.TryGetProperty("head_dim", out var hdj) && hdj.ValueKind == JsonValueKind.Number ? hdj.GetInt32() : hidden / heads;
        var w = TestSafetensors.Read(Path.Combine(hfFolder, "model.safetensors"));

        var g = new GgufWriter();
        g.Add("general.architecture", arch);
        g.Add("general.name", Path.GetFileName(hfFolder.TrimEnd('/')));
        g.Add($"{arch}.block_count", (uint)layers);
        g.Add($"{arch}.context_length", (uint)c.GetProperty("max_position_embeddings").GetInt32());
        g.Add($"{arch}.embedding_length", (uint)hidden);
        g.Add($"{arch}.feed_forward_length", (uint)c.GetProperty("intermediate_size").GetInt32());
        g.Add($"{arch}.attention.head_count", (uint)heads);
        g.Add($"{arch}.attention.head_count_kv", (uint)kvHeads);
        g.Add($"{arch}.rope.freq_base", (float)c.GetProperty("rope_theta").GetDouble());
        g.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)c.GetProperty("rms_norm_eps").GetDouble());
        g.Add($"{arch}.rope.dimension_count", (uint)hd);
        g.Add($"{arch}.vocab_size", (uint)c.GetProperty("vocab_size").GetInt32());
        if (hd != hidden / heads)
        {
            g.Add($"{arch}.attention.key_length", (uint)hd);
            g.Add($"{arch}.attention.value_length", (uint)hd);
        }
        g.Add("general.file_type", (uint)(type switch { DType.F32 => 0, DType.F16 => 1, DType.Q8_0 => 7, DType.BF16 => 32, _ => 0 }));
        g.Add("tokenizer.ggml.bos_token_id", (uint)c.GetProperty("bos_token_id").GetInt32());
        g.Add("tokenizer.ggml.eos_token_id", (uint)c.GetProperty("eos_token_id").GetInt32());

        if (c.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object
            && rs.GetProperty("rope_type").GetString() == "yarn")
        {
            // convert_hf_to_gguf.py ModelBase (rope_type "yarn"): type, factor, original context length; the converter
            // also copies attn_factor to rope.scaling.yarn_attn_factor, a key llama.cpp does not read for qwen3.
            g.Add($"{arch}.rope.scaling.type", "yarn");
            g.Add($"{arch}.rope.scaling.factor", (float)rs.GetProperty("factor").GetDouble());
            g.Add($"{arch}.rope.scaling.original_context_length", (uint)rs.GetProperty("original_max_position_embeddings").GetInt32());
            if (rs.TryGetProperty("attn_factor", out var af)) g.Add($"{arch}.rope.scaling.yarn_attn_factor", (float)af.GetDouble());
        }
        else if (c.TryGetProperty("rope_scaling", out rs) && rs.ValueKind == JsonValueKind.Object)
        {
            // convert_hf_to_gguf.py LlamaModel.generate_extra_tensors: rope_freqs = per-frequency divisors.
            double theta = c.GetProperty("rope_theta").GetDouble(), factor = rs.GetProperty("factor").GetDouble();
            double lowF = rs.GetProperty("low_freq_factor").GetDouble(), highF = rs.GetProperty("high_freq_factor").GetDouble();
            int orig = rs.GetProperty("original_max_position_embeddings").GetInt32();
            var factors = new float[hd / 2];
            for (int i = 0; i < hd / 2; i++)
            {
                double freq = 1.0 / Math.Pow(theta, 2.0 * i / hd), wavelen = 2 * Math.PI / freq;
                if (wavelen < orig / highF) factors[i] = 1;
                else if (wavelen > orig / lowF) factors[i] = (float)factor;
                else
                {
                    double smooth = (orig / wavelen - lowF) / (highF - lowF);
                    factors[i] = (float)(1 / ((1 - smooth) / factor + smooth));
                }
            }
            g.AddTensor("rope_freqs.weight", DType.F32, [hd / 2], Encode(factors, DType.F32));
            if (!ropeFreqsOnly)
            {
                g.Add($"{arch}.rope.scaling.type", "llama3");
                g.Add($"{arch}.rope.scaling.factor", (float)factor);
                g.Add($"{arch}.rope.scaling.original_context_length", (uint)orig);
            }
        }

        void Put(string gguf, string hf, int permuteHeads = 0)
        {
            var (shape, values) = w[hf];
            if (permuteHeads > 0) values = Permute(values, (int)shape[0], (int)shape[1], permuteHeads);
            if (shape.Length == 2 && matrixTransform != null) values = matrixTransform(values);
            var t = shape.Length == 1 ? DType.F32 : type;
            g.AddTensor(gguf, t, shape, Encode(values, t));
        }
        Put("token_embd.weight", "model.embed_tokens.weight");
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            bool llama = arch == "llama" && !skipPermute;
            Put(b + "attn_norm.weight", p + "input_layernorm.weight");
            Put(b + "attn_q.weight", p + "self_attn.q_proj.weight", llama ? heads : 0);
            Put(b + "attn_k.weight", p + "self_attn.k_proj.weight", llama ? kvHeads : 0);
            Put(b + "attn_v.weight", p + "self_attn.v_proj.weight");
            if (w.ContainsKey(p + "self_attn.q_proj.bias"))
            {
                Put(b + "attn_q.bias", p + "self_attn.q_proj.bias");
                Put(b + "attn_k.bias", p + "self_attn.k_proj.bias");
                Put(b + "attn_v.bias", p + "self_attn.v_proj.bias");
            }
            if (w.ContainsKey(p + "self_attn.q_norm.weight"))
            {
                Put(b + "attn_q_norm.weight", p + "self_attn.q_norm.weight");
                Put(b + "attn_k_norm.weight", p + "self_attn.k_norm.weight");
            }
            Put(b + "attn_output.weight", p + "self_attn.o_proj.weight");
            Put(b + "ffn_norm.weight", p + "post_attention_layernorm.weight");
            Put(b + "ffn_gate.weight", p + "mlp.gate_proj.weight");
            Put(b + "ffn_up.weight", p + "mlp.up_proj.weight");
            Put(b + "ffn_down.weight", p + "mlp.down_proj.weight");
        }
        Put("output_norm.weight", "model.norm.weight");
        if (w.ContainsKey("lm_head.weight")) Put("output.weight", "lm_head.weight");
        g.Write(outPath);
        return outPath;
    }

    /// <summary>
    /// llama.cpp convert_hf_to_gguf.py LlamaModel.permute:
    /// w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols).
    /// New row (h, j, two) = old row (h, two, j): rotate-half pairs (j, j + d/2) become adjacent (2j, 2j + 1).
    /// </summary>
    public static float[] Permute(float[] w, int rows, int cols, int nHead)
    {
        int half = rows / nHead / 2;
        var o = new float[w.Length];
        for (int h = 0; h < nHead; h++)
            for (int j = 0; j < half; j++)
                for (int two = 0; two < 2; two++)
                {
                    int dst = h * 2 * half + j * 2 + two, src = h * 2 * half + two * half + j;
                    Array.Copy(w, src * cols, o, dst * cols, cols);
                }
        return o;
    }

    public static byte[] Encode(float[] v, DType t)
    {
        switch (t)
        {
            case DType.F32:
            {
                var b = new byte[v.Length * 4];
                for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
                return b;
            }
            case DType.F16:
            {
                var b = new byte[v.Length * 2];
                for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), BitConverter.HalfToUInt16Bits((Half)v[i]));
                return b;
            }
            case DType.BF16:
            {
                var b = new byte[v.Length * 2];
                for (int i = 0; i < v.Length; i++)
                {
                    uint u = BitConverter.SingleToUInt32Bits(v[i]);
                    u += 0x7FFF + ((u >> 16) & 1);   // round to nearest even (ggml_compute_fp32_to_bf16, finite inputs)
                    BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), (ushort)(u >> 16));
                }
                return b;
            }
            case DType.Q8_0:
                return QuantizeQ8_0(v);
            default: throw new NotSupportedException(t.ToString());
        }
    }

    /// <summary>ggml dequantize_row_q8_0: x = fp16(d) * q, decoded here independently of the engine.</summary>
    public static float[] DequantizeQ8_0(byte[] b)
    {
        var x = new float[b.Length / 34 * 32];
        for (int blk = 0; blk < b.Length / 34; blk++)
        {
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(blk * 34)));
            for (int j = 0; j < 32; j++) x[blk * 32 + j] = d * (sbyte)b[blk * 34 + 2 + j];
        }
        return x;
    }

    /// <summary>
    /// ggml quantize_row_q8_0_ref: per block of 32, d = max|x| / 127, q = roundf(x / d) (half away from zero);
    /// block_q8_0 = { fp16 d; int8 qs[32] } (34 bytes).
    /// </summary>
    public static byte[] QuantizeQ8_0(float[] x)
    {
        Assert.Equal(0, x.Length % 32);
        var b = new byte[x.Length / 32 * 34];
        for (int blk = 0; blk < x.Length / 32; blk++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[blk * 32 + j]));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(blk * 34), BitConverter.HalfToUInt16Bits((Half)d));
            for (int j = 0; j < 32; j++) b[blk * 34 + 2 + j] = (byte)(sbyte)MathF.Round(x[blk * 32 + j] * id, MidpointRounding.AwayFromZero);
        }
        return b;
    }
}
