using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>
/// karpathy/llama2.c checkpoint (run.c, "legacy" export version 0): a header of 7 int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier
/// is stored separately rather than shared with the embedding), then float32 arrays in this order:
/// token_embedding [vocab, dim], rms_att [layers, dim], wq [layers, dim, dim], wk [layers, kv_dim, dim],
/// wv [layers, kv_dim, dim], wo [layers, dim, dim], rms_ffn [layers, dim], w1 [layers, hidden, dim],
/// w2 [layers, dim, hidden], w3 [layers, hidden, dim], rms_final [dim], freq_cis_real/imag [seq_len, head_size/2]
/// (unused; RoPE is recomputed), wcls [vocab, dim] when not shared. Each matrix is PyTorch's [out, in] row-major.
/// Tensors are exposed under Hugging Face Llama names; the header is returned as read (the loader turns it into a
/// config: RoPE rotates interleaved pairs as in run.c, θ = 10000, eps 1e-5).
/// </summary>
internal sealed unsafe class Llama2cCheckpoint : IDisposable
{
    /// <summary>The file's memory.</summary>
    public MappedFile Mapped { get; }
    public string Path => Mapped.Path;
    public Llama2cHeader Header { get; }
    public IReadOnlyDictionary<string, TensorView> Tensors { get; }

    private Llama2cCheckpoint(MappedFile file, Llama2cHeader header, Dictionary<string, TensorView> tensors)
    {
        Mapped = file; Header = header; Tensors = tensors;
    }

    public void Dispose() => Mapped.Dispose();

    public static Llama2cCheckpoint Open(string path, WeightMemory memory = WeightMemory.Mmap)
    {
        var file = MappedFile.Open(path, memory);
        try
        {
            if (file.Length < 28) throw ModelFormatException.In(path, $"expected a llama2.c checkpoint with a 28-byte header, but the file has {file.Length} bytes");
            var h = new ReadOnlySpan<int>(file.Pointer, 7);
            int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabRaw = h[5], seqLen = h[6];
            bool shared = vocabRaw > 0;
            if (vocabRaw is 0 or int.MinValue or < -(1 << 24) or > 1 << 24)   // -2^31 has no absolute value
                throw ModelFormatException.In(path, $"header field vocab_size = {vocabRaw}, expected a non-zero size of at most 2^24 (negative: separate classifier)");
            int vocab = Math.Abs(vocabRaw);
            string[] names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
            for (int i = 0; i < 7; i++)
                if (i != 5 && (h[i] <= 0 || h[i] > 1 << 20)) throw ModelFormatException.In(path, $"header field {names[i]} = {h[i]}, expected a positive size (not a llama2.c checkpoint?)");
            if (vocab == 0 || dim % heads != 0 || heads % kvHeads != 0)
                throw ModelFormatException.In(path, $"inconsistent header: dim {dim}, n_heads {heads}, n_kv_heads {kvHeads}, vocab_size {vocabRaw}");
            int headSize = dim / heads, kvDim = kvHeads * headSize;

            var tensors = new Dictionary<string, TensorView>();
            long offset = 28;
            TensorView Take(string name, params long[] shape)
            {
                long n = 1; foreach (var d in shape) n *= d;
                long bytes = n * 4;
                var t = new TensorView(name, DType.F32, shape, file.At(offset, bytes), bytes, path);
                offset += bytes;
                return t;
            }
            // Per-layer arrays are stored layer-major: slice each into one HF-named tensor per layer.
            void PerLayer(string hfName, params long[] shape)
            {
                var all = Take(hfName, [layers, .. shape]);
                long bytes = all.ByteLength / layers;
                for (int l = 0; l < layers; l++)
                {
                    string n = $"model.layers.{l}.{hfName}";
                    tensors[n] = new TensorView(n, DType.F32, shape, all.Data + l * bytes, bytes, path);
                }
            }
            try
            {
                tensors["model.embed_tokens.weight"] = Take("model.embed_tokens.weight", vocab, dim);
                PerLayer("input_layernorm.weight", dim);
                PerLayer("self_attn.q_proj.weight", dim, dim);
                PerLayer("self_attn.k_proj.weight", kvDim, dim);
                PerLayer("self_attn.v_proj.weight", kvDim, dim);
                PerLayer("self_attn.o_proj.weight", dim, dim);
                PerLayer("post_attention_layernorm.weight", dim);
                PerLayer("mlp.gate_proj.weight", hidden, dim);   // w1
                PerLayer("mlp.down_proj.weight", dim, hidden);   // w2
                PerLayer("mlp.up_proj.weight", hidden, dim);     // w3
                tensors["model.norm.weight"] = Take("model.norm.weight", dim);
                offset += (long)seqLen * headSize / 2 * 4 * 2;   // freq_cis_real + freq_cis_imag
                if (!shared) tensors["lm_head.weight"] = Take("lm_head.weight", vocab, dim);
            }
            catch (ModelFormatException)
            {
                throw ModelFormatException.In(path, $"file has {file.Length} bytes, too short for the weights its header describes (dim {dim}, {layers} layers, vocab {vocab}; truncated?)");
            }
            if (offset != file.Length)
                throw ModelFormatException.In(path, $"file has {file.Length} bytes but its header describes {offset} (not a llama2.c v0 checkpoint, or wrong header)");

            return new Llama2cCheckpoint(file, new Llama2cHeader(dim, hidden, layers, heads, kvHeads, vocab, seqLen, shared), tensors);
        }
        catch { file.Dispose(); throw; }
    }
}

/// <summary>
/// A llama2.c header: <paramref name="VocabSize"/> is the absolute value of the stored vocab_size, whose sign says
/// whether the classifier is the embedding (<paramref name="SharedClassifier"/>, positive) or stored after it.
/// </summary>
internal sealed record Llama2cHeader(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen, bool SharedClassifier);
