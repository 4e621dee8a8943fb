using System.Numerics.Tensors;
using System.Text.RegularExpressions;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// DeepSeek-V2 / V2-Lite / V3 / R1: a transformer whose blocks pair Multi-head Latent Attention with a dense MLP
/// (the first <c>first_k_dense_replace</c> layers) or DeepSeekMoE (deepseek-ai/DeepSeek-V3 inference/model.py class
/// Transformer). Weights are read by Hugging Face name (GGUF goes through <see cref="DeepSeekGguf"/>); stored formats
/// are kept as they are (FP8 with block scales, BF16, GGUF quants) and multiplied by <see cref="MatMul"/>.
/// Multi-token-prediction layers (stored after the main layers) are not loaded.
/// </summary>
public sealed class DeepSeekModel : ILanguageModel
{
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    /// <summary>How attention is computed; sessions copy it when created (Auto: absorbed decoding, naive prefill).</summary>
    public MlaMode MlaMode { get; set; } = MlaMode.Auto;

    /// <summary>MTP layers present in the weights (layer index ≥ num_hidden_layers) that were not loaded.</summary>
    public int SkippedMtpLayers { get; }

    /// <summary>
    /// RoPE rotates interleaved pairs (2i, 2i+1), as DeepSeek's reference does on its weights (config.RopeInterleaved).
    /// True for HF and GGUF DeepSeek weights: HF's modeling_deepseek.py de-interleaves q_pe/k_pe at run time before
    /// rotate_half, which is the same computation; llama.cpp's deepseek2 uses LLAMA_ROPE_TYPE_NORM (adjacent pairs) on
    /// unpermuted weights. The fixture's reference logits confirm it.
    /// </summary>
    public bool RopeInterleaved { get; }

    internal readonly WeightMatrix Embed;   // [vocab, dim]
    internal readonly WeightMatrix Head;    // [vocab, dim]
    internal readonly float[] FinalNorm;    // [dim]
    internal readonly Block[] Layers;
    internal readonly int MaxInter;         // widest MLP hidden layer (dense, expert or shared)

    /// <summary>Attention, dense and shared MLPs, the router, the head, and num_experts_per_tok routed experts per MoE layer.</summary>
    public long WeightBytesPerToken =>
        Weights.BytesPerToken(Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", Config.NRoutedExperts, Config.NumExpertsPerTok);

    public long KvBytesPerToken => (long)Config.NumLayers * (Config.KvLoraRank + Config.QkRopeHeadDim) * sizeof(float);

    /// <summary>Builds the graph over <paramref name="weights"/> (HF names) with <paramref name="config"/>.</summary>
    /// <param name="ropeInterleaved">Override the rope layout (null: the config's, interleaved for DeepSeek).</param>
    public DeepSeekModel(ModelWeights weights, ModelConfig config, bool? ropeInterleaved = null)
    {
        if (!config.IsMla) throw new ModelFormatException($"{weights.Source}: model_type {config.ModelType} is not a DeepSeek MLA model");
        if (config.KvLoraRank <= 0 || config.QkRopeHeadDim <= 0 || config.QkNopeHeadDim <= 0 || config.VHeadDim <= 0 || config.QkRopeHeadDim % 2 != 0)
            throw new ModelFormatException($"{weights.Source}: MLA needs kv_lora_rank, qk_nope_head_dim, v_head_dim > 0 and an even qk_rope_head_dim");
        Config = config; Weights = weights;
        RopeInterleaved = ropeInterleaved ?? config.RopeInterleaved;
        int dim = config.HiddenSize;
        Embed = weights.RawMatrix("model.embed_tokens.weight", config.VocabSize, dim); // looked up by row
        Head = weights.Matrix(config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", config.VocabSize, dim);
        FinalNorm = weights.Vector("model.norm.weight", dim);
        Layers = new Block[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++) Layers[i] = new Block(weights, config, i);
        MaxInter = Math.Max(config.IntermediateSize, Math.Max(config.MoeIntermediateSize, config.NSharedExperts * config.MoeIntermediateSize));

        var mtp = new HashSet<int>();
        var layerName = new Regex(@"^model\.layers\.(\d+)\.");
        foreach (var name in weights.Tensors.Keys)
            if (layerName.Match(name) is { Success: true } m && int.Parse(m.Groups[1].Value) >= config.NumLayers)
                mtp.Add(int.Parse(m.Groups[1].Value));
        SkippedMtpLayers = mtp.Count;
    }

    /// <summary>Opens a Hugging Face folder (config.json + safetensors, possibly sharded, FP8 or BF16).</summary>
    public static DeepSeekModel OpenFolder(string dir, bool? ropeInterleaved = null)
    {
        var config = ModelConfig.FromHfJson(Path.Combine(dir, "config.json"));
        var weights = ModelWeights.OpenSafetensorsFolder(dir);
        try { return new DeepSeekModel(weights, config, ropeInterleaved); }
        catch { weights.Dispose(); throw; }
    }

    public IModelSession NewSession(int contextLength) => new DeepSeekSession(this, contextLength);

    private DeepSeekSession? _decodeScratch;
    private DeepSeekSession[] _rows = [];
    private int[] _positions = [];
    private DeepSeekScratch? _scratch;

    /// <summary>Forward-pass buffers shared by all sessions (created with the first session).</summary>
    internal DeepSeekScratch Scratch
    {
        get { lock (this) return _scratch ??= new DeepSeekScratch(this); }
    }

    /// <summary>
    /// One decoding step for several sequences at once (continuous batching): row i feeds tokens[i] to sessions[i] at
    /// its own position and gets its logits in row i of <paramref name="logits"/> [n, vocab]. Attention projections,
    /// the shared experts and the head read their weights once for all rows; the routed experts once per expert over
    /// the rows that chose it; attention runs absorbed over each row's own latent cache.
    /// </summary>
    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int n = sessions.Count, vocab = Config.VocabSize;
        if (tokens.Length != n) throw new ArgumentException($"{tokens.Length} tokens for {n} sessions");
        if (logits.Length < (long)n * vocab) throw new ArgumentException("logits buffer too small");
        lock (this)
        {
            var scratch = _decodeScratch ??= new DeepSeekSession(this, 1);   // buffers only; rows use their own caches
            for (int done = 0; done < n; done += DeepSeekSession.MaxBatch)
            {
                int m = Math.Min(DeepSeekSession.MaxBatch, n - done);
                if (_rows.Length < m) { _rows = new DeepSeekSession[m]; _positions = new int[m]; }    // grown, then reused
                var rows = _rows;
                var positions = _positions;
                for (int i = 0; i < m; i++)
                {
                    var s = sessions[done + i] as DeepSeekSession ?? throw new ArgumentException("a session of another model");
                    if (s.Position + 1 > s.ContextLength) throw new InvalidOperationException($"context full: session {done + i} holds {s.Position} of {s.ContextLength} tokens");
                    if ((uint)tokens[done + i] >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[done + i]} is outside the vocabulary (0..{vocab - 1})");
                    if (Array.IndexOf(rows, s, 0, i) >= 0) throw new ArgumentException("a session appears twice in one batch");
                    rows[i] = s; positions[i] = s.Position;
                }
                scratch.DecodeRows(rows, positions, tokens.Slice(done, m), logits.Slice(done * vocab, m * vocab));
                for (int i = 0; i < m; i++) rows[i].Advance(1);
                Array.Clear(rows, 0, m);
            }
        }
    }

    public void Dispose() => Weights.Dispose();
}

/// <summary>One transformer block (model.py class Block): attention and feed-forward, each behind an RMSNorm and a residual.</summary>
internal sealed class Block
{
    private readonly float[] _attnNorm, _ffnNorm; // [dim] input_layernorm, post_attention_layernorm
    private readonly MLA _attn;
    private readonly IFeedForward _ffn;
    private readonly int _layer, _dim;
    private readonly float _eps;

    public Block(ModelWeights w, ModelConfig c, int layer)
    {
        _layer = layer; _dim = c.HiddenSize; _eps = c.RmsNormEps;
        string p = $"model.layers.{layer}.";
        _attnNorm = w.Vector(p + "input_layernorm.weight", _dim);
        _ffnNorm = w.Vector(p + "post_attention_layernorm.weight", _dim);
        _attn = new MLA(w, c, p + "self_attn.");
        _ffn = c.IsMoeLayer(layer) ? new MoE(w, c, p + "mlp.") : new MLP(w, p + "mlp.", _dim, c.IntermediateSize);
    }

    /// <summary>x[n, dim] += attn(attn_norm(x)); x += ffn(ffn_norm(x)) for n tokens at positions [start, start+n).</summary>
    public void Forward(DeepSeekSession s, Span<float> x, int n, int start)
    {
        var h = s.Normed.AsSpan(0, n * _dim);   // [n, dim]
        var o = s.Out.AsSpan(0, n * _dim);      // [n, dim]
        var xs = x[..(n * _dim)];
        Ops.RmsNormRows(xs, _attnNorm, h, n, _dim, _eps); _attn.Forward(s, _layer, h, o, n, start); TensorPrimitives.Add(xs, o, xs);
        Ops.RmsNormRows(xs, _ffnNorm, h, n, _dim, _eps); _ffn.Forward(s, h, o, n); TensorPrimitives.Add(xs, o, xs);
    }
}
