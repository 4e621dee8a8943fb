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

    /// <summary>Scratch of forward passes (one at a time, under its lock), shared by every session.</summary>
    internal readonly LlamaBatch Scratch = new();

    /// <summary>
    /// One decoding step for several sequences at once: row i feeds tokens[i] to sessions[i] (each at its own
    /// position) and gets its logits in row i of <paramref name="logits"/> [n, vocab]. The weights are read once for
    /// all rows, so n sequences cost about what one does while decoding is memory-bound.
    /// </summary>
    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int n = sessions.Count;
        if (tokens.Length != n) throw new ArgumentException($"{tokens.Length} tokens for {n} sessions");
        if (logits.Length < (long)n * Config.VocabSize) throw new ArgumentException("logits buffer too small");
        if (n == 0) return;
        lock (Scratch)
        {
            var b = Scratch;
            b.Reserve(Config, n);
            for (int i = 0; i < n; i++)
            {
                var s = sessions[i] as LlamaSession ?? throw new ArgumentException("a session of another model");
                if (s.Position + 1 > s.ContextLength) throw new InvalidOperationException($"context full: session {i} holds {s.Position} of {s.ContextLength} tokens");
                for (int j = 0; j < i; j++)
                    if (ReferenceEquals(b.Sessions[j], s)) throw new ArgumentException("a session appears twice in one batch");
                b.Sessions[i] = s; b.Positions[i] = s.Position;
            }
            LlamaSession.Run(this, b, tokens, logits, 0);
            for (int i = 0; i < n; i++) b.Sessions[i].Position++;
            Array.Clear(b.Sessions);
        }
    }

    public void Dispose() => Weights.Dispose();
}

/// <summary>
/// Scratch for one forward pass over n rows, and which sequence and position each row is: rows of one session at
/// consecutive positions (a prompt), or one row per session (a batched decoding step).
/// </summary>
internal sealed class LlamaBatch
{
    private int _capacity;
    public float[] X = [], Xb = [], Q = [], K = [], V = [], Att = [], O = [], G = [], U = [];
    public LlamaSession[] Sessions = [];
    public int[] Positions = [];
    public readonly MatMulBatch Products = new();
    public readonly LlamaSession.AttentionJob Attention = new();

    public void Reserve(ModelConfig c, int n)
    {
        if (n <= _capacity) return;
        X = new float[n * c.HiddenSize]; Xb = new float[n * c.HiddenSize]; O = new float[n * c.HiddenSize];
        Q = new float[n * c.NumHeads * c.HeadDim]; Att = new float[n * c.NumHeads * c.HeadDim];
        K = new float[n * c.NumKvHeads * c.HeadDim]; V = new float[n * c.NumKvHeads * c.HeadDim];
        G = new float[n * c.IntermediateSize]; U = new float[n * c.IntermediateSize];
        Sessions = new LlamaSession[n]; Positions = new int[n];
        _capacity = n;
    }
}

/// <summary>A sequence's KV cache (float32, [layer][pos, kvHeads*headDim] for K and V).</summary>
internal sealed unsafe class LlamaSession : IModelSession
{
    private readonly LlamaModel _m;
    internal readonly float[][] KCache, VCache;   // per layer: [ctx, kv*hd]

    public int Position { get; internal set; }
    public int ContextLength { get; }

    public LlamaSession(LlamaModel m, int ctx)
    {
        _m = m; ContextLength = ctx;
        int kv = m.Config.NumKvHeads * m.Config.HeadDim;
        KCache = new float[m.Config.NumLayers][];
        VCache = new float[m.Config.NumLayers][];
        for (int l = 0; l < KCache.Length; l++) { KCache[l] = new float[(long)ctx * kv]; VCache[l] = new float[(long)ctx * kv]; }
    }

    public void Truncate(int position) => Position = Math.Clamp(position, 0, Position);

    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
    {
        var c = _m.Config;
        int n = tokens.Length;
        if (n == 0) return;
        if (Position + n > ContextLength)
            throw new InvalidOperationException($"context full: {Position} + {n} tokens exceed the context length {ContextLength}");
        if (logits.Length < (allPositions ? n : 1) * c.VocabSize) throw new ArgumentException("logits buffer too small");
        // The scratch of a forward pass belongs to the model, not the session: passes run one at a time anyway (they
        // share the worker pool), and a server's slots would otherwise each keep hundreds of MB of prompt scratch.
        lock (_m.Scratch)
        {
            var b = _m.Scratch;
            b.Reserve(c, n);
            for (int t = 0; t < n; t++) { b.Sessions[t] = this; b.Positions[t] = Position + t; }
            Run(_m, b, tokens, logits, allPositions ? 0 : n - 1);
            Array.Clear(b.Sessions, 0, n);
        }
        Position += n;
    }

    /// <summary>
    /// One forward pass over the rows of <paramref name="b"/> (its Sessions and Positions set for the n tokens):
    /// every matrix product runs once over all rows (one weight read for the whole batch while decoding), RoPE,
    /// cache writes and attention per row against its own session's cache. Logits for rows from
    /// <paramref name="firstLogitRow"/> on, [n - firstLogitRow, vocab].
    /// </summary>
    internal static void Run(LlamaModel m, LlamaBatch b, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow)
    {
        var c = m.Config;
        int n = tokens.Length, dim = c.HiddenSize, hd = c.HeadDim;
        int qDim = c.NumHeads * hd, kvDim = c.NumKvHeads * hd, ffn = c.IntermediateSize;

        // x [n, dim] = embedding rows
        for (int t = 0; t < n; t++)
        {
            if ((uint)tokens[t] >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[t]} is outside the vocabulary (0..{c.VocabSize - 1})");
            Dequantize.RowOf(m.Embedding, tokens[t], b.X.AsSpan(t * dim, dim));
        }

        for (int l = 0; l < c.NumLayers; l++)
        {
            var blk = m.Layers[l];
            // --- attention: x = x + Wo · attn(RMSNorm(x)) ---
            Ops.RmsNormRows(b.X, blk.AttnNorm, b.Xb, n, dim, c.RmsNormEps);
            fixed (float* xb = b.Xb, q = b.Q, kk = b.K, vv = b.V)
            {
                b.Products.Clear(n);                                 // one dispatch while decoding
                b.Products.Add(blk.Wq, xb, q);                       // [n, heads*hd]
                b.Products.Add(blk.Wk, xb, kk);                      // [n, kv*hd]
                b.Products.Add(blk.Wv, xb, vv);                      // [n, kv*hd]
                MatMul.Multiply(b.Products);
            }
            for (int t = 0; t < n; t++)
            {
                var q = b.Q.AsSpan(t * qDim, qDim);
                var k = b.K.AsSpan(t * kvDim, kvDim);
                var v = b.V.AsSpan(t * kvDim, kvDim);
                if (blk.Bq != null) { TensorPrimitives.Add(q, blk.Bq, q); TensorPrimitives.Add(k, blk.Bk!, k); TensorPrimitives.Add(v, blk.Bv!, v); }
                int pos = b.Positions[t];
                var cos = m.Rope.Cos(pos); var sin = m.Rope.Sin(pos);
                for (int h = 0; h < c.NumHeads; h++) Ops.Rope(q.Slice(h * hd, hd), cos, sin, c.RopeInterleaved);
                for (int h = 0; h < c.NumKvHeads; h++) Ops.Rope(k.Slice(h * hd, hd), cos, sin, c.RopeInterleaved);
                k.CopyTo(b.Sessions[t].KCache[l].AsSpan(pos * kvDim, kvDim));
                v.CopyTo(b.Sessions[t].VCache[l].AsSpan(pos * kvDim, kvDim));
            }
            b.Attention.Set(c, b, l);
            WorkerPool.Shared.Run(b.Attention, n * (c.NumHeads / b.Attention.HeadsPerItem));
            MatMul.Multiply(blk.Wo, b.Att, b.O, n);                  // [n, dim]
            TensorPrimitives.Add(b.X.AsSpan(0, n * dim), b.O.AsSpan(0, n * dim), b.X.AsSpan(0, n * dim));

            // --- MLP: x = x + Down · (silu(Gate · h) * (Up · h)), h = RMSNorm(x) ---
            Ops.RmsNormRows(b.X, blk.MlpNorm, b.Xb, n, dim, c.RmsNormEps);
            fixed (float* xb = b.Xb, g = b.G, u = b.U)
            {
                b.Products.Clear(n);
                b.Products.Add(blk.Gate, xb, g);                     // [n, ffn]
                b.Products.Add(blk.Up, xb, u);                       // [n, ffn]
                MatMul.Multiply(b.Products);
            }
            Ops.SwiGlu(b.G.AsSpan(0, n * ffn), b.U.AsSpan(0, n * ffn));
            MatMul.Multiply(blk.Down, b.G, b.O, n);                  // [n, dim]
            TensorPrimitives.Add(b.X.AsSpan(0, n * dim), b.O.AsSpan(0, n * dim), b.X.AsSpan(0, n * dim));
        }

        // Final norm and the output head only for the rows whose logits are wanted.
        int rows = n - firstLogitRow;
        Ops.RmsNormRows(b.X.AsSpan(firstLogitRow * dim), m.FinalNorm, b.Xb, rows, dim, c.RmsNormEps);
        MatMul.Multiply(m.Output, b.Xb, logits, rows);
    }

    public void Dispose() { }

    /// <summary>
    /// Causal attention, one (row, group of query heads sharing a KV head) per item: softmax(q·K / sqrt(hd)) · V
    /// over positions 0..pos of the row's own session, each K/V row read once for the group (<see cref="Ops.Attention"/>).
    /// </summary>
    internal sealed class AttentionJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores;
        private ModelConfig _c = null!;
        private LlamaBatch _b = null!;
        private int _layer;
        public int HeadsPerItem { get; private set; }

        public void Set(ModelConfig c, LlamaBatch b, int layer)
        {
            _c = c; _b = b; _layer = layer;
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
                var session = _b.Sessions[t];
                int len = _b.Positions[t] + 1; // causal: this row sees positions 0..pos of its sequence
                // Grown by doubling, so decoding past the buffer does not allocate on every token.
                var scores = (_scores is { } s && s.Length >= G * len ? s : (_scores = new float[Math.Max(G * len * 2, 256)])).AsSpan(0, G * len);
                Ops.Attention(_b.Q.AsSpan((t * heads + h0) * hd), hd, G, hd,
                    session.KCache[_layer].AsSpan(kvh * hd), kvDim, session.VCache[_layer].AsSpan(kvh * hd), kvDim, hd, len, scale,
                    scores, _b.Att.AsSpan((t * heads + h0) * hd), hd);
            }
        }
    }
}
