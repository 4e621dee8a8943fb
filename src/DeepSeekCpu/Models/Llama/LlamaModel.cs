using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.Llama;

/// <summary>
/// The Llama / Qwen2 decoder (the R1 distills and the llama2.c demo model): pre-norm blocks of grouped-query
/// attention with RoPE and a SwiGLU MLP. Qwen2 adds biases to q/k/v. Weights are read by Hugging Face name.
/// </summary>
public sealed class LlamaModel : ILanguageModel
{
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    internal readonly WeightMatrix Embedding;     // [vocab, hidden]
    internal readonly Block[] Layers;
    internal readonly float[] FinalNorm;          // [hidden]
    internal readonly WeightMatrix Output;        // [vocab, hidden]
    /// <summary>cos/sin tables, grown to the longest session's context (the full 128K table would be 64 MB).</summary>
    internal RopeTable Rope { get; private set; }
    private readonly object _ropeLock = new();

    internal sealed class Block
    {
        public required float[] AttnNorm, MlpNorm;                  // [hidden]
        public required WeightMatrix Wq, Wk, Wv, Wo;                 // [heads*hd, hidden], [kv*hd, hidden] x2, [hidden, heads*hd]
        public float[]? Bq, Bk, Bv;                                  // Qwen2 biases
        public required WeightMatrix Gate, Up, Down;                 // [ffn, hidden] x2, [hidden, ffn]
    }

    public LlamaModel(ModelConfig c, ModelWeights w)
    {
        Config = c; Weights = w;
        int hd = c.HeadDim, q = c.NumHeads * hd, kv = c.NumKvHeads * hd;
        if (c.NumHeads % c.NumKvHeads != 0)
            throw new ModelFormatException($"{w.Source}: num_attention_heads {c.NumHeads} is not a multiple of num_key_value_heads {c.NumKvHeads}");
        var emb = w.Get("model.embed_tokens.weight");
        if (emb.Rank != 2 || emb.Shape[0] != c.VocabSize || emb.Shape[1] != c.HiddenSize)
            throw new ModelFormatException($"{emb.File}: tensor model.embed_tokens.weight has shape {emb.ShapeText}, expected [{c.VocabSize}, {c.HiddenSize}]");
        Embedding = w.RawMatrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize); // looked up row by row
        Layers = new Block[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            Layers[i] = new Block
            {
                AttnNorm = w.Vector(p + "input_layernorm.weight", c.HiddenSize),
                MlpNorm = w.Vector(p + "post_attention_layernorm.weight", c.HiddenSize),
                Wq = w.Matrix(p + "self_attn.q_proj.weight", q, c.HiddenSize),
                Wk = w.Matrix(p + "self_attn.k_proj.weight", kv, c.HiddenSize),
                Wv = w.Matrix(p + "self_attn.v_proj.weight", kv, c.HiddenSize),
                Wo = w.Matrix(p + "self_attn.o_proj.weight", c.HiddenSize, q),
                Bq = c.AttentionBias ? w.Vector(p + "self_attn.q_proj.bias", q) : null,
                Bk = c.AttentionBias ? w.Vector(p + "self_attn.k_proj.bias", kv) : null,
                Bv = c.AttentionBias ? w.Vector(p + "self_attn.v_proj.bias", kv) : null,
                Gate = w.Matrix(p + "mlp.gate_proj.weight", c.IntermediateSize, c.HiddenSize),
                Up = w.Matrix(p + "mlp.up_proj.weight", c.IntermediateSize, c.HiddenSize),
                Down = w.Matrix(p + "mlp.down_proj.weight", c.HiddenSize, c.IntermediateSize),
            };
        }
        FinalNorm = w.Vector("model.norm.weight", c.HiddenSize);
        _headName = c.TieWordEmbeddings || !w.Contains("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
        Output = w.Matrix(_headName, c.VocabSize, c.HiddenSize);
        Rope = new RopeTable(c, hd, Math.Min(c.MaxPositionEmbeddings, 4096));
    }

    public long WeightBytesPerToken => Weights.BytesPerToken(_headName);
    private readonly string _headName;

    public long KvBytesPerToken => (long)Config.NumLayers * Config.KvValuesPerTokenPerLayer * sizeof(float);

    public IModelSession NewSession(int contextLength)
    {
        if (contextLength <= 0 || contextLength > Config.MaxPositionEmbeddings) contextLength = Config.MaxPositionEmbeddings;
        lock (_ropeLock) if (Rope.MaxPositions < contextLength) Rope = new RopeTable(Config, Config.HeadDim, contextLength);
        return new LlamaSession(this, contextLength);
    }

    public void Dispose() => Weights.Dispose();
}

/// <summary>A sequence's KV cache (float32, [layer][pos, kvHeads*headDim] for K and V) and scratch buffers.</summary>
internal sealed unsafe class LlamaSession : IModelSession
{
    private readonly LlamaModel _m;
    private readonly float[][] _k, _v;            // per layer: [ctx, kv*hd]
    private int _capacity;                        // tokens the scratch buffers hold
    private float[] _x = [], _xb = [], _q = [], _kk = [], _vv = [], _att = [], _o = [], _g = [], _u = [];
    private readonly AttentionJob _attJob = new();
    private readonly MatMulBatch _batch = new();

    public int Position { get; private set; }
    public int ContextLength { get; }

    public LlamaSession(LlamaModel m, int ctx)
    {
        _m = m; ContextLength = ctx;
        int kv = m.Config.NumKvHeads * m.Config.HeadDim;
        _k = new float[m.Config.NumLayers][];
        _v = new float[m.Config.NumLayers][];
        for (int l = 0; l < _k.Length; l++) { _k[l] = new float[(long)ctx * kv]; _v[l] = new float[(long)ctx * kv]; }
        Reserve(1);
    }

    private void Reserve(int n)
    {
        if (n <= _capacity) return;
        var c = _m.Config;
        _x = new float[n * c.HiddenSize]; _xb = new float[n * c.HiddenSize]; _o = new float[n * c.HiddenSize];
        _q = new float[n * c.NumHeads * c.HeadDim]; _att = new float[n * c.NumHeads * c.HeadDim];
        _kk = new float[n * c.NumKvHeads * c.HeadDim]; _vv = new float[n * c.NumKvHeads * c.HeadDim];
        _g = new float[n * c.IntermediateSize]; _u = new float[n * c.IntermediateSize];
        _capacity = n;
    }

    public void Truncate(int position) => Position = Math.Clamp(position, 0, Position);

    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
    {
        var c = _m.Config;
        int n = tokens.Length, dim = c.HiddenSize, hd = c.HeadDim;
        int qDim = c.NumHeads * hd, kvDim = c.NumKvHeads * hd, ffn = c.IntermediateSize;
        if (n == 0) return;
        if (Position + n > ContextLength)
            throw new InvalidOperationException($"context full: {Position} + {n} tokens exceed the context length {ContextLength}");
        if (logits.Length < (allPositions ? n : 1) * c.VocabSize) throw new ArgumentException("logits buffer too small");
        Reserve(n);
        int pos0 = Position;

        // x [n, dim] = embedding rows
        for (int t = 0; t < n; t++)
        {
            if ((uint)tokens[t] >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[t]} is outside the vocabulary (0..{c.VocabSize - 1})");
            Dequantize.RowOf(_m.Embedding, tokens[t], _x.AsSpan(t * dim, dim));
        }

        for (int l = 0; l < c.NumLayers; l++)
        {
            var b = _m.Layers[l];
            // --- attention: x = x + Wo · attn(RMSNorm(x)) ---
            Ops.RmsNormRows(_x, b.AttnNorm, _xb, n, dim, c.RmsNormEps);
            fixed (float* xb = _xb, q = _q, kk = _kk, vv = _vv)
            {
                _batch.Clear(n);                                     // one dispatch while decoding
                _batch.Add(b.Wq, xb, q);                             // [n, heads*hd]
                _batch.Add(b.Wk, xb, kk);                            // [n, kv*hd]
                _batch.Add(b.Wv, xb, vv);                            // [n, kv*hd]
                MatMul.Multiply(_batch);
            }
            for (int t = 0; t < n; t++)
            {
                var q = _q.AsSpan(t * qDim, qDim);
                var k = _kk.AsSpan(t * kvDim, kvDim);
                var v = _vv.AsSpan(t * kvDim, kvDim);
                if (b.Bq != null) { TensorPrimitives.Add(q, b.Bq, q); TensorPrimitives.Add(k, b.Bk!, k); TensorPrimitives.Add(v, b.Bv!, v); }
                var rope = _m.Rope;
                var cos = rope.Cos(pos0 + t); var sin = rope.Sin(pos0 + t);
                for (int h = 0; h < c.NumHeads; h++) Ops.Rope(q.Slice(h * hd, hd), cos, sin, c.RopeInterleaved);
                for (int h = 0; h < c.NumKvHeads; h++) Ops.Rope(k.Slice(h * hd, hd), cos, sin, c.RopeInterleaved);
                k.CopyTo(_k[l].AsSpan((pos0 + t) * kvDim, kvDim));
                v.CopyTo(_v[l].AsSpan((pos0 + t) * kvDim, kvDim));
            }
            _attJob.Set(c, _q, _k[l], _v[l], _att, pos0);
            WorkerPool.Shared.Run(_attJob, n * (c.NumHeads / _attJob.HeadsPerItem));
            MatMul.Multiply(b.Wo, _att, _o, n);                      // [n, dim]
            TensorPrimitives.Add(_x.AsSpan(0, n * dim), _o.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));

            // --- MLP: x = x + Down · (silu(Gate · h) * (Up · h)), h = RMSNorm(x) ---
            Ops.RmsNormRows(_x, b.MlpNorm, _xb, n, dim, c.RmsNormEps);
            fixed (float* xb = _xb, g = _g, u = _u)
            {
                _batch.Clear(n);
                _batch.Add(b.Gate, xb, g);                           // [n, ffn]
                _batch.Add(b.Up, xb, u);                             // [n, ffn]
                MatMul.Multiply(_batch);
            }
            Ops.SwiGlu(_g.AsSpan(0, n * ffn), _u.AsSpan(0, n * ffn));
            MatMul.Multiply(b.Down, _g, _o, n);                      // [n, dim]
            TensorPrimitives.Add(_x.AsSpan(0, n * dim), _o.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));
        }

        // Final norm and the output head only for the rows whose logits are wanted.
        int first = allPositions ? 0 : n - 1, rows = n - first;
        Ops.RmsNormRows(_x.AsSpan(first * dim), _m.FinalNorm, _xb, rows, dim, c.RmsNormEps);
        MatMul.Multiply(_m.Output, _xb, logits, rows);
        Position += n;
    }

    public void Dispose() { }

    /// <summary>
    /// Causal attention, one (token, group of query heads sharing a KV head) per item: softmax(q·K / sqrt(hd)) · V
    /// over positions 0..pos, each K/V row read once for the group (<see cref="Ops.Attention"/>).
    /// </summary>
    private sealed class AttentionJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores;
        private ModelConfig _c = null!;
        private float[] _q = null!, _k = null!, _v = null!, _out = null!;
        private int _pos0;
        public int HeadsPerItem { get; private set; }

        public void Set(ModelConfig c, float[] q, float[] k, float[] v, float[] output, int pos0)
        {
            _c = c; _q = q; _k = k; _v = v; _out = output; _pos0 = pos0;
            HeadsPerItem = Ops.HeadsPerItem(c.NumHeads / c.NumKvHeads, c.NumKvHeads, WorkerPool.Shared.ThreadCount);
        }

        public void Run(int start, int end)
        {
            int hd = _c.HeadDim, heads = _c.NumHeads, kvDim = _c.NumKvHeads * hd, group = heads / _c.NumKvHeads;
            int G = HeadsPerItem, itemsPerToken = heads / G;
            float scale = 1f / MathF.Sqrt(hd);
            for (int item = start; item < end; item++)
            {
                int t = item / itemsPerToken, h0 = item % itemsPerToken * G, kvh = h0 / group;
                int len = _pos0 + t + 1; // causal: this token sees positions 0..pos0+t
                // Grown by doubling, so decoding past the buffer does not allocate on every token.
                var scores = (_scores is { } s && s.Length >= G * len ? s : (_scores = new float[Math.Max(G * len * 2, 256)])).AsSpan(0, G * len);
                Ops.Attention(_q.AsSpan((t * heads + h0) * hd), hd, G, hd,
                    _k.AsSpan(kvh * hd), kvDim, _v.AsSpan(kvh * hd), kvDim, hd, len, scale,
                    scores, _out.AsSpan((t * heads + h0) * hd), hd);
            }
        }
    }
}
