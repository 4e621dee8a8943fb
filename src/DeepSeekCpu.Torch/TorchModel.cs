using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekCpu.Torch;

/// <summary>
/// The engine's model graph over TorchSharp tensors (model.py class Transformer): embedding, blocks of attention
/// (GQA for Llama/Qwen2, MLA for DeepSeek-V2/V3) and feed-forward (MLP or MoE), final norm and head. Built from the
/// engine's <see cref="ModelConfig"/> and <see cref="ModelWeights"/> (whatever file the engine read), on one device or
/// on several with consecutive layers per device (<see cref="Placement"/>); the activations move between devices
/// with the hidden state. Implements the engine's <see cref="ILanguageModel"/>, so run, chat, logits, bench and serve
/// drive it unchanged.
/// </summary>
internal sealed class TorchModel : ILanguageModel
{
    /// <summary>Rows per forward pass: longer prompts run as several passes (bounds the attention scores).</summary>
    public const int MaxRows = 256;

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public Placement Placement { get; }
    public ComputeType DType { get; }
    /// <summary>Whether Q8_0/Q4_0 weights stay packed on the device (<see cref="WeightStorage"/>).</summary>
    public bool Packed { get; }

    private readonly Device[] _devices;
    private readonly ScalarType _dtype;
    private readonly DeviceWeight _embed;        // [vocab, dim] on the first device
    private readonly Block[] _layers;
    private readonly RMSNorm _norm;              // on the last device
    private readonly DeviceWeight _head;         // [vocab, dim] on the last device
    private readonly Rope[] _rope;               // per device, grown to the longest session
    private readonly List<IDisposable> _owned = [];
    private readonly Lock _passLock = new();
    private readonly long _weightBytesPerToken;

    internal TorchModel(ModelConfig c, ModelWeights w, TorchOptions o)
    {
        Config = c; Weights = w; DType = o.DType;
        _dtype = o.DType switch { ComputeType.BF16 => ScalarType.BFloat16, ComputeType.F16 => ScalarType.Float16, _ => ScalarType.Float32 };
        if (c.IsMla && (c.KvLoraRank <= 0 || c.QkRopeHeadDim <= 0 || c.QkNopeHeadDim <= 0 || c.VHeadDim <= 0 || c.QkRopeHeadDim % 2 != 0))
            throw new ModelFormatException($"{w.Source}: MLA needs kv_lora_rank, qk_nope_head_dim, v_head_dim > 0 and an even qk_rope_head_dim");
        Packed = Placement.KeepPacked(w, o);
        Placement = Placement.Plan(c, w, o.Devices, o.DType, Packed);
        _devices = o.Devices.Select(d => torch.device(d)).ToArray();
        var loaders = _devices.Select(d => new LayerLoader(w, c, d, _dtype, Packed)).ToArray();
        try
        {
            int ropeDim = c.IsMla ? c.QkRopeHeadDim : c.HeadDim;
            var table = new RopeTable(c, ropeDim, Math.Clamp(c.MaxPositionEmbeddings, 1, 4096));
            _rope = _devices.Select(d => new Rope(table, c.RopeInterleaved, d)).ToArray();
            // softmax_scale = (nope + rope)^-0.5, times mscale² under YaRN (model.py MLA.__init__)
            float mlaScale = (float)(1.0 / Math.Sqrt(c.QkNopeHeadDim + c.QkRopeHeadDim)) * table.AttentionScaleFactor;

            var first = loaders[0];
            var last = loaders[Placement.LayerDevice[^1]];
            _embed = first.Linear("model.embed_tokens.weight", c.VocabSize, c.HiddenSize);
            _layers = new Block[c.NumLayers];
            for (int i = 0; i < c.NumLayers; i++)
            {
                int d = Placement.LayerDevice[i];
                _layers[i] = new Block(loaders[d], i, mlaScale, () => _rope[d]) { Device = d };
            }
            _norm = new RMSNorm(last.Vector("model.norm.weight", c.HiddenSize), c.RmsNormEps);
            bool tied = c.TieWordEmbeddings || !w.Contains("lm_head.weight");
            _head = tied && ReferenceEquals(first, last) ? _embed
                : last.Linear(tied ? "model.embed_tokens.weight" : "lm_head.weight", c.VocabSize, c.HiddenSize);
            _weightBytesPerToken = _head.Bytes + _layers.Sum(b => b.BytesPerToken);
        }
        catch
        {
            foreach (var l in loaders) foreach (var d in l.Owned) d.Dispose();
            throw;
        }
        foreach (var l in loaders) _owned.AddRange(l.Owned);
    }

    /// <summary>Bytes of weights one decoded token reads on the devices (attention, MLPs, the chosen experts' share, the head).</summary>
    public long WeightBytesPerToken => _weightBytesPerToken;

    /// <summary>What `bench` prints: the backend, its devices, the compute type and libtorch's CPU threads.</summary>
    public override string ToString() =>
        $"torch (libtorch {torch.__version__}) on {string.Join(",", Placement.Devices)}, {DType.ToString().ToLowerInvariant()}, {(Packed ? "packed" : "expanded")} weights, {torch.get_num_threads()} CPU threads";

    public long KvBytesPerToken => (long)Config.NumLayers * Config.KvValuesPerTokenPerLayer * (DType == ComputeType.F32 ? 4 : 2);

    public IModelSession NewSession(int contextLength)
    {
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength), $"context length {contextLength}: a session holds at least one token");
        contextLength = Math.Min(contextLength, Math.Max(1, Config.MaxPositionEmbeddings));
        lock (_passLock)                                                  // no pass reads the tables while they are replaced
        {
            if (_rope[0].Positions < contextLength)
            {
                var table = new RopeTable(Config, Config.IsMla ? Config.QkRopeHeadDim : Config.HeadDim, contextLength);
                for (int d = 0; d < _rope.Length; d++) { _rope[d].Dispose(); _rope[d] = new Rope(table, Config.RopeInterleaved, _devices[d]); }
            }
        }
        return new TorchSession(this, contextLength, _layers.Select(b => b.NewCache(contextLength)).ToArray());
    }

    /// <summary>
    /// model.py Transformer.forward for tokens at positions start..start+n−1 of one session: the logits of rows
    /// firstLogitRow..n−1 as float32 [m, vocab] on the host.
    /// </summary>
    internal void Forward(ReadOnlySpan<int> tokens, int start, LayerCache[] caches, Span<float> logits, int firstLogitRow)
    {
        int n = tokens.Length;
        using var pass = _passLock.EnterScope();                          // one pass at a time (sessions may share the model)
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(tokens.ToArray().Select(t => (long)t).ToArray(), [n], ScalarType.Int64, _devices[0]);
        var x = _embed.RowsOf(ids);                                      // [n, dim]
        for (int l = 0; l < _layers.Length; l++)
        {
            using var layerScope = NewDisposeScope();                   // a layer's activations die with it
            x = _layers[l].Forward(x.to(_devices[_layers[l].Device]), start, caches[l]).MoveToOuterDisposeScope();
        }
        int m = n - firstLogitRow;
        if (m == 0) return;
        var h = _norm.Forward(x.narrow(0, firstLogitRow, m));
        var result = _head.Forward(h).to(ScalarType.Float32).cpu();     // [m, vocab]
        result.data<float>().CopyTo(logits[..(m * Config.VocabSize)]);
    }

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        foreach (var r in _rope) r.Dispose();
        Weights.Dispose();
    }

    /// <summary>One transformer block (model.py class Block): x += attn(attn_norm(x)); x += ffn(ffn_norm(x)).</summary>
    private sealed class Block
    {
        private readonly RMSNorm _attnNorm, _ffnNorm;
        private readonly IAttention _attn;
        private readonly IFeedForward _ffn;
        public int Device { get; init; }
        public long BytesPerToken { get; }

        public Block(LayerLoader l, int layer, float mlaScale, Func<Rope> rope)
        {
            var c = l.Config;
            string p = $"model.layers.{layer}.";
            _attnNorm = new RMSNorm(l.Vector(p + "input_layernorm.weight", c.HiddenSize), c.RmsNormEps);
            _ffnNorm = new RMSNorm(l.Vector(p + "post_attention_layernorm.weight", c.HiddenSize), c.RmsNormEps);
            if (c.IsMla)
            {
                var mla = new MLA(l, p + "self_attn.", mlaScale, rope);
                _attn = mla; BytesPerToken = mla.Bytes;
            }
            else
            {
                var gqa = new Attention(l, p + "self_attn.", rope);
                _attn = gqa; BytesPerToken = gqa.Bytes;
            }
            _ffn = c.IsMla && c.IsMoeLayer(layer) ? new MoE(l, p + "mlp.") : new MLP(l, p + "mlp.", c.HiddenSize, c.IntermediateSize);
            BytesPerToken += _ffn.BytesPerToken;
        }

        public LayerCache NewCache(int ctx) => _attn.NewCache(ctx);

        public Tensor Forward(Tensor x, int start, LayerCache cache)
        {
            x = x + _attn.Forward(_attnNorm.Forward(x), start, cache);
            return x + _ffn.Forward(_ffnNorm.Forward(x));
        }
    }
}

/// <summary>One sequence of a <see cref="TorchModel"/>: its cache on the devices of its layers.</summary>
internal sealed class TorchSession(TorchModel model, int contextLength, LayerCache[] caches) : IModelSession
{
    public int Position { get; private set; }
    public int ContextLength { get; } = contextLength;

    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
    {
        // the engine's batch contract (BatchContract.Forward): same checks, same messages
        int n = tokens.Length, vocab = model.Config.VocabSize;
        if (n == 0) throw new ArgumentException("no tokens to feed", nameof(tokens));
        if ((long)Position + n > ContextLength)
            throw new InvalidOperationException($"context full: {Position} + {n} tokens exceed the context length {ContextLength}");
        if (logits.Length < (allPositions ? (long)n * vocab : vocab))
            throw new ArgumentException($"logits has {logits.Length} values, expected {(allPositions ? n : 1)} x {vocab}", nameof(logits));
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary (0..{vocab - 1})");
        for (int done = 0; done < n; done += TorchModel.MaxRows)
        {
            int m = Math.Min(TorchModel.MaxRows, n - done);
            if (allPositions) model.Forward(tokens.Slice(done, m), Position, caches, logits.Slice(done * vocab, m * vocab), 0);
            else model.Forward(tokens.Slice(done, m), Position, caches, logits[..vocab], done + m == n ? m - 1 : m);
            Position += m;
        }
    }

    public void Truncate(int position)
    {
        if (position < 0 || position > Position)
            throw new ArgumentOutOfRangeException(nameof(position), $"cannot truncate to {position}: the session holds {Position} tokens");
        Position = position;
    }

    public void Dispose() { foreach (var c in caches) c.Dispose(); }
}
