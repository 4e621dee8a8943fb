using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// DeepSeek-V3/R1's multi-token-prediction (MTP) module (DeepSeek-V3 Technical Report §2.2), used to draft one token
/// ahead for self-speculative decoding. Its weights sit after the main layers, under
/// <c>model.layers.{num_hidden_layers}.</c> (deepseek-ai/DeepSeek-V3 README_WEIGHTS.md): <c>embed_tokens</c>,
/// <c>enorm</c>, <c>hnorm</c>, <c>eh_proj</c> [dim, 2·dim], a whole decoder block (MLA + MoE, the main layers'
/// names), <c>shared_head.norm</c> and <c>shared_head.head</c>. In GGUF (llama.cpp gguf-py constants.py,
/// MODEL_TENSOR.NEXTN_*) the same tensors are <c>blk.N.nextn.{embed_tokens,enorm,hnorm,eh_proj,shared_head_norm,
/// shared_head_head}</c> beside the block's usual <c>blk.N.attn_*</c>/<c>ffn_*</c>; llama.cpp treats the embedding
/// and head as optional (the main model's are the same matrices), and so do we.
/// <para>
/// For position i, with h_i the main model's last hidden state after its final norm (what vLLM's and SGLang's MTP
/// proposers hand over) and t_{i+1} the token that follows it:
/// <code>
///   h'_i  = eh_proj [enorm(Emb(t_{i+1})) ; hnorm(h_i)]     the embedding's half first: the column order of eh_proj
///                                                          in the checkpoint (vLLM deepseek_mtp.py concatenates so)
///   h''_i = Block(h'_i)                                    one MLA + MoE block at position i over its own latent cache
///   logits_i = shared_head.head(shared_head.norm(h''_i))   the distribution of t_{i+2}
/// </code>
/// The report's equation writes the two halves the other way round; the released weights follow the order above.
/// To guess further than one token the module is chained as vLLM does: its output h''_i stands in for h_{i+1}.
/// </para>
/// <para>
/// State per sequence of the main model (<see cref="State"/>): every main forward pass hands over its rows' last
/// hidden states (<see cref="Capture"/>), kept by position like one more cache layer, so that a speculative round can
/// feed the module the rows it has not seen yet, once their next token is known (the prompt's rows at the first
/// round, then the verified ones). The module's own latent cache holds rows 0..Rows-1; a row stays valid while the
/// tokens it was built from (t_0..t_{i+1}) are still the sequence's.
/// </para>
/// </summary>
internal sealed class Mtp : IForwardPass<DeepSeekSession>
{
    /// <summary>Rows per forward pass of the module (bounds its pass buffers).</summary>
    public const int MaxRows = 64;

    private readonly DeepSeekModel _m;
    private readonly ModelConfig _c;
    private readonly RopeTables _rope;
    private readonly WeightMatrix _embed;     // [vocab, dim] looked up by row
    private readonly float[] _enorm, _hnorm;  // [dim]
    private readonly float[] _mainNorm;       // [dim] the main model's final norm (h_i is taken after it)
    private readonly WeightMatrix _ehProj;    // [dim, 2·dim]
    private readonly Block _block;
    private readonly float[] _headNorm;       // [dim] shared_head.norm
    private readonly WeightMatrix _head;      // [vocab, dim] shared_head.head
    private readonly BatchContract<DeepSeekSession> _contract;
    private readonly ConditionalWeakTable<DeepSeekSession, State> _states = [];
    private readonly float[] _hIn;            // [MaxRows, dim] h of the rows being fed
    private readonly float[] _cat;            // [MaxRows, 2·dim] [enorm(e) ; hnorm(h)]
    private readonly float[] _out;            // [dim] the last fed row's h'' (stands in for h when chaining)
    private readonly float[] _logits;         // [vocab]
    private readonly float[] _normed;         // [dim] capture scratch
    private DeepSeekPass? _pass;
    private readonly Lock _draftLock = new();  // Draft's buffers (_hIn, _out, _logits) serve one caller at a time

    /// <summary>The layer index of the module's weights (num_hidden_layers).</summary>
    public int Layer { get; }

    /// <summary>Whether the weights hold the module's own shared_head.head (else it reads the main model's head).</summary>
    public bool HasOwnHead { get; }

    internal Mtp(DeepSeekModel m, ModelWeights w, ModelConfig c, RopeTables rope, float softmaxScale, bool ropeInterleaved,
        WeightMatrix mainEmbed, float[] mainNorm, string mainHead)
    {
        _m = m; _c = c; _rope = rope; Layer = c.NumLayers;
        int dim = c.HiddenSize;
        string p = $"model.layers.{Layer}.";
        _embed = w.Contains(p + "embed_tokens.weight") ? w.RawMatrix(p + "embed_tokens.weight", c.VocabSize, dim) : mainEmbed;
        _enorm = w.Vector(p + "enorm.weight", dim);
        _hnorm = w.Vector(p + "hnorm.weight", dim);
        _ehProj = w.Matrix(p + "eh_proj.weight", dim, 2 * dim);
        _block = new Block(w, c, Layer, softmaxScale, ropeInterleaved);
        _headNorm = w.Vector(p + "shared_head.norm.weight", dim);
        HasOwnHead = w.Contains(p + "shared_head.head.weight");
        _head = w.Matrix(HasOwnHead ? p + "shared_head.head.weight" : mainHead, c.VocabSize, dim);
        _mainNorm = mainNorm;
        _contract = new BatchContract<DeepSeekSession>(c, MaxRows, this);
        _hIn = new float[MaxRows * dim]; _cat = new float[MaxRows * 2 * dim];
        _out = new float[dim]; _logits = new float[c.VocabSize]; _normed = new float[dim];
    }

    /// <summary>What the module keeps for one sequence of the main model.</summary>
    private sealed class State(DeepSeekSession session, KvCache hidden)
    {
        public readonly DeepSeekSession Session = session;   // the module's latent cache (only its own layer is used)
        public readonly KvCache Hidden = hidden;             // [ctx, dim] h_i after the main model's final norm
        public int Captured;                                 // positions 0..Captured-1 of Hidden match the main cache
        public int Rows;                                     // module rows 0..Rows-1 are (h_i, t_{i+1}), valid
        public readonly List<int> Tokens = [];               // t_0..t_Rows: the tokens those rows were built from
    }

    /// <summary>
    /// Called by the main model after its last block: keeps each row's h (after the final norm) by position.
    /// x: [rows, dim] the residual stream.
    /// </summary>
    internal void Capture(BatchRows<DeepSeekSession> rows, ReadOnlySpan<float> x)
    {
        int dim = _c.HiddenSize;
        for (int t = 0; t < rows.Count; t++)
        {
            var s = rows.Sessions[t];
            int pos = rows.Positions[t];
            var st = _states.GetValue(s, NewState);
            if (pos > st.Captured) continue;   // earlier positions were never seen (the module came later): no use
            Ops.RmsNorm(x.Slice(t * dim, dim), _mainNorm, _normed, _c.RmsNormEps);
            st.Hidden.Write(pos, _normed);
            st.Captured = pos + 1;
        }
    }

    private State NewState(DeepSeekSession s) =>
        new(new DeepSeekSession(_m, s.ContextLength, s.Cache[0].Type, layers: Layer + 1),
            new KvCache(KvCacheType.F32, _c.HiddenSize, s.ContextLength));

    /// <summary>
    /// Guesses up to guesses.Length tokens that follow <paramref name="next"/> after the <paramref name="cached"/>
    /// tokens of <paramref name="target"/> (a session of this model): the module first reads the rows it has not seen,
    /// then drafts greedily, chaining itself after the first guess. Returns how many it wrote (0: it cannot draft,
    /// e.g. the session's earlier passes ran before the module was loaded).
    /// </summary>
    public int Draft(IModelSession target, IReadOnlyList<int> cached, int next, Span<int> guesses)
    {
        lock (_draftLock) return DraftLocked(target, cached, next, guesses);
    }

    private int DraftLocked(IModelSession target, IReadOnlyList<int> cached, int next, Span<int> guesses)
    {
        if (target is not DeepSeekSession s || !ReferenceEquals(s.Owner, _m))
            throw new ArgumentException("the session belongs to another model", nameof(target));
        int P = s.Position, dim = _c.HiddenSize, vocab = _c.VocabSize;
        if (guesses.Length == 0 || P == 0 || cached.Count != P || !_states.TryGetValue(s, out var st) || st.Captured < P) return 0;
        int TokenAt(int i) => i < P ? cached[i] : next;

        // rows still valid: row i was built from t_0..t_{i+1}
        int same = 0, limit = Math.Min(st.Tokens.Count, P + 1);
        while (same < limit && st.Tokens[same] == TokenAt(same)) same++;
        int r = Math.Min(Math.Min(st.Rows, P - 1), Math.Max(0, same - 1));   // the last row is always fed: it drafts
        st.Session.Truncate(r);

        // feed rows r..P-1: (h_i, t_{i+1}); the last one is (h_{P-1}, next) and gives the first guess
        Span<int> succ = stackalloc int[MaxRows];                        // [n] t_{i+1} per row
        for (int i = r; i < P; i += MaxRows)
        {
            int n = Math.Min(MaxRows, P - i);
            for (int j = 0; j < n; j++)
            {
                st.Hidden.Read(i + j, _hIn.AsSpan(j * dim, dim));
                succ[j] = TokenAt(i + j + 1);
            }
            _contract.Forward(st.Session, succ[..n], _logits, allPositions: false);
        }
        st.Rows = P;
        st.Tokens.Clear();
        for (int i = 0; i <= P; i++) st.Tokens.Add(TokenAt(i));

        int k = 0;
        guesses[k++] = TensorPrimitives.IndexOfMax(_logits);
        // further guesses: the module's own output stands in for the main model's h (rows past Rows, dropped next round)
        while (k < guesses.Length && st.Session.Position < st.Session.ContextLength)
        {
            _out.CopyTo(_hIn, 0);
            _contract.Forward(st.Session, [guesses[k - 1]], _logits, allPositions: false);
            guesses[k++] = TensorPrimitives.IndexOfMax(_logits);
        }
        return k;
    }

    /// <summary>The module's logits [vocab] at the last row <see cref="Draft"/> fed (the first guess is their argmax).</summary>
    public ReadOnlySpan<float> Logits => _logits;

    /// <summary>Forgets every sequence's module rows (after a failed pass left a cache unknown); the kept hidden
    /// states stay, valid where the main cache is.</summary>
    public void Forget()
    {
        lock (_draftLock)
            foreach (var (_, st) in _states) { st.Rows = 0; st.Tokens.Clear(); }
    }

    /// <summary>One pass of the module over rows whose h is in _hIn and whose t_{i+1} is tokens[t].</summary>
    void IForwardPass<DeepSeekSession>.Run(BatchRows<DeepSeekSession> rows, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow)
    {
        int n = rows.Count, dim = _c.HiddenSize;
        var p = _pass is { } b && b.Rows >= n ? b : (_pass = new DeepSeekPass(_c, Math.Min(MaxRows, Math.Max(n, 2 * (_pass?.Rows ?? 0)))));
        var e = p.Normed.AsSpan(0, n * dim);                         // [n, dim] Emb(t_{i+1})
        Ops.EmbedRows(_embed, tokens[..n], e);
        var cat = _cat.AsSpan(0, n * 2 * dim);                       // [n, 2·dim]
        for (int t = 0; t < n; t++)
        {
            Ops.RmsNorm(e.Slice(t * dim, dim), _enorm, cat.Slice(t * 2 * dim, dim), _c.RmsNormEps);
            Ops.RmsNorm(_hIn.AsSpan(t * dim, dim), _hnorm, cat.Slice(t * 2 * dim + dim, dim), _c.RmsNormEps);
        }
        var x = p.X.AsSpan(0, n * dim);                              // [n, dim]
        MatMul.Multiply(_ehProj, cat, x, n);
        _block.Forward(p, rows, _rope.Current, MlaPlan.Expands(_m.MlaMode, rows, _c), x);
        x.Slice((n - 1) * dim, dim).CopyTo(_out);
        Ops.NormThenHead(x[(firstLogitRow * dim)..], _headNorm, _c.RmsNormEps, _head, p.Normed, logits);
    }
}
