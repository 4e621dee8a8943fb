using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>How MLA computes attention: over the latent cache (absorbed) or with keys/values expanded per head.</summary>
public enum MlaMode
{
    /// <summary>Absorbed for decoding; naive for prompt chunks whose queries are most of the keys (cheaper there).</summary>
    Auto,
    /// <summary>Always absorbed: scores and values over the latent c_kv (DeepSeek's attn_impl "absorb").</summary>
    Absorbed,
    /// <summary>Always naive: expand k_h = [W_uk_h c_kv ; k_pe], v_h = W_uv_h c_kv per head (attn_impl "naive"). Reference.</summary>
    Naive,
}

/// <summary>
/// Multi-head Latent Attention (DeepSeek-V2 paper §2.1; deepseek-ai/DeepSeek-V3 inference/model.py class MLA).
/// Queries come from a low-rank projection (q LoRA) or a plain q_proj; keys and values from one latent c_kv per token
/// that all heads share, plus one rope key k_pe shared by all heads. The KV cache holds only [c_kv ; k_pe] per token.
/// </summary>
internal sealed unsafe class MLA
{
    private readonly int _dim, _heads, _nope, _rope, _v, _kvl;
    private readonly int _qkHead; // nope + rope
    private readonly float _eps;

    // q: either wq [heads*(nope+rope), dim], or wq_a [q_lora, dim] → q_norm → wq_b [heads*(nope+rope), q_lora]
    private readonly WeightMatrix? _wq, _wqA, _wqB;
    private readonly float[]? _qNorm;                 // [q_lora]
    private readonly WeightMatrix _wkvA;              // [kvl + rope, dim]  (HF kv_a_proj_with_mqa)
    private readonly float[] _kvNorm;                 // [kvl]
    /// <summary>
    /// kv_b_proj as float32, [heads, nope + v, kvl]: per head the nope rows are W_uk_h, the v rows W_uv_h.
    /// Pinned so that <see cref="_wkvBMatrix"/> can view it for the naive path's batched expansion.
    /// </summary>
    private readonly float[] _wkvB;
    private readonly WeightMatrix _wkvBMatrix;        // the same values as an F32 matrix [heads*(nope+v), kvl]
    /// <summary>
    /// The absorbed path's per-head matrices, multiplied as matrix-vector products in (close to) the stored precision:
    /// W_ukᵀ_h [kvl, nope] turns q_nope into the latent query, W_uv_h [v, kvl] the latent output into the head's
    /// values. Views into the stored tensors where the layout allows, otherwise one packed copy (see BuildAbsorbed).
    /// </summary>
    private readonly WeightMatrix[] _wukT, _wuv;
    private readonly WeightMatrix _wo;                // [dim, heads*v]

    public int KvValuesPerToken => _kvl + _rope;      // cache row: [c_kv (kvl) ; k_pe (rope)]

    public MLA(ModelWeights w, ModelConfig c, string p)
    {
        _dim = c.HiddenSize; _heads = c.NumHeads; _nope = c.QkNopeHeadDim; _rope = c.QkRopeHeadDim; _v = c.VHeadDim;
        _kvl = c.KvLoraRank; _qkHead = _nope + _rope; _eps = c.RmsNormEps;
        if (c.QLoraRank is int qr && qr > 0)
        {
            _wqA = w.Matrix(p + "q_a_proj.weight", qr, _dim);
            _qNorm = w.Vector(p + "q_a_layernorm.weight", qr);
            _wqB = w.Matrix(p + "q_b_proj.weight", _heads * _qkHead, qr);
        }
        else _wq = w.Matrix(p + "q_proj.weight", _heads * _qkHead, _dim);
        _wkvA = w.Matrix(p + "kv_a_proj_with_mqa.weight", _kvl + _rope, _dim);
        _kvNorm = w.Vector(p + "kv_a_layernorm.weight", _kvl);
        _wo = w.Matrix(p + "o_proj.weight", _dim, _heads * _v);

        // kv_b_proj is small (heads*(nope+v) x kvl; 64 MiB as float32 for V3) and the absorbed path reads it per
        // head both ways (W_ukᵀ and W_uv), so it is dequantized once here, whatever the stored format.
        _wkvB = GC.AllocateUninitializedArray<float>(_heads * (_nope + _v) * _kvl, pinned: true);
        _wukT = new WeightMatrix[_heads]; _wuv = new WeightMatrix[_heads];
        if (w.Contains(p + "kv_b_proj.weight"))
        {
            var kvB = w.RawMatrix(p + "kv_b_proj.weight", _heads * (_nope + _v), _kvl);
            Dequantize.Matrix(kvB).CopyTo(_wkvB, 0);
            BuildAbsorbed(w, kvB);
        }
        else LoadSplitKvB(w, p);
        _wkvBMatrix = new WeightMatrix(p + "kv_b_proj.weight(f32)", DType.F32, _heads * (_nope + _v), _kvl,
            (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_wkvB, 0));
    }

    /// <summary>
    /// Per-head W_ukᵀ and W_uv from the combined kv_b_proj [heads * (nope + v), kvl]. W_uv_h is rows
    /// h*(nope+v)+nope .. +v of it, used in place (FP8 excepted: its 128-row scale blocks would need re-slicing, so it is
    /// packed as float32). W_ukᵀ_h needs a transpose, packed once: float formats keep their type (F32 and BF16 fixtures
    /// stay exact), FP8 becomes float32 (exact; model.py dequantizes it to BF16 here, a rounding we do not add) and
    /// GGUF quants Q8_0 (an 8-bit copy of the dequantized values, so decoding reads 1.06 bytes per weight instead of
    /// the 4 of float32).
    /// </summary>
    private void BuildAbsorbed(ModelWeights w, WeightMatrix kvB)
    {
        DType packed = kvB.Type switch
        {
            DType.F32 or DType.F16 or DType.BF16 => kvB.Type,
            DType.F8_E4M3 => DType.F32,
            _ => DType.Q8_0,
        };
        var t = new float[_kvl * _nope];                                     // [kvl, nope] W_ukᵀ_h
        var uk = Pack(w, kvB.Name + "(uk^T)", packed, _heads * _kvl, _nope, h =>
        {
            int baseRow = h * (_nope + _v);
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    t[c * _nope + d] = _wkvB[(baseRow + d) * _kvl + c];
            return t;
        });
        for (int h = 0; h < _heads; h++)
            _wukT[h] = new WeightMatrix($"{uk.Name}[{h}]", packed, _kvl, _nope, uk.Row(h * _kvl));

        if (kvB.Type == DType.F8_E4M3)
        {
            var uv = Pack(w, kvB.Name + "(uv)", DType.F32, _heads * _v, _kvl,
                h => _wkvB.AsSpan((h * (_nope + _v) + _nope) * _kvl, _v * _kvl).ToArray());
            for (int h = 0; h < _heads; h++)
                _wuv[h] = new WeightMatrix($"{uv.Name}[{h}]", DType.F32, _v, _kvl, uv.Row(h * _v));
        }
        else
        {
            for (int h = 0; h < _heads; h++)
                _wuv[h] = new WeightMatrix($"{kvB.Name}(uv)[{h}]", kvB.Type, _v, _kvl, kvB.Row(h * (_nope + _v) + _nope));
            w.AddDerived(kvB.Name + "(uv)", _heads * _v * kvB.RowBytes, null);
        }
    }

    /// <summary>
    /// A packed [heads * rowsPerHead, cols] matrix of <paramref name="type"/> whose head h rows come from
    /// <paramref name="headRows"/>(h) ([rowsPerHead, cols] float32); owned and counted by <paramref name="w"/>.
    /// </summary>
    private WeightMatrix Pack(ModelWeights w, string name, DType type, int rows, int cols, Func<int, float[]> headRows)
    {
        long rowBytes = type.ByteCount(cols);
        var buffer = new NativeBuffer(rowBytes * rows);
        w.AddDerived(name, rowBytes * rows, buffer);
        int perHead = rows / _heads;
        for (int h = 0; h < _heads; h++)
        {
            var src = headRows(h);
            for (int r = 0; r < perHead; r++)
                Quantize.Row(type, src.AsSpan(r * cols, cols),
                    new Span<byte>(buffer.Pointer + (long)(h * perHead + r) * rowBytes, checked((int)rowBytes)));
        }
        return new WeightMatrix(name, type, rows, cols, buffer.Pointer, null, buffer);
    }

    /// <summary>
    /// GGUF files from newer llama.cpp converters split kv_b_proj into k_b_proj [heads, kvl, nope] (W_uk transposed per
    /// head) and v_b_proj [heads, v, kvl] (W_uv); DeepSeekGguf passes them on under these names.
    /// </summary>
    private void LoadSplitKvB(ModelWeights w, string p)
    {
        var kb = w.Get(p + "k_b_proj.weight");
        var vb = w.Get(p + "v_b_proj.weight");
        if (kb.ElementCount != (long)_heads * _kvl * _nope || kb.Shape[^1] != _nope)
            throw new ModelFormatException($"{kb.File}: tensor {kb.Name} has shape {kb.ShapeText}, expected [{_heads}, {_kvl}, {_nope}]");
        if (vb.ElementCount != (long)_heads * _v * _kvl || vb.Shape[^1] != _kvl)
            throw new ModelFormatException($"{vb.File}: tensor {vb.Name} has shape {vb.ShapeText}, expected [{_heads}, {_v}, {_kvl}]");
        var kbf = Dequantize.Matrix(new WeightMatrix(kb.Name, kb.Type, _heads * _kvl, _nope, kb.Data)); // [heads, kvl, nope]
        var vbf = Dequantize.Matrix(new WeightMatrix(vb.Name, vb.Type, _heads * _v, _kvl, vb.Data));    // [heads, v, kvl]
        for (int h = 0; h < _heads; h++)
        {
            int baseRow = h * (_nope + _v);
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    _wkvB[(baseRow + d) * _kvl + c] = kbf[((long)h * _kvl + c) * _nope + d];
            Array.Copy(vbf, (long)h * _v * _kvl, _wkvB, (long)(baseRow + _nope) * _kvl, _v * _kvl);
            // k_b is already W_ukᵀ per head and v_b W_uv: the absorbed path uses them in place
            _wukT[h] = new WeightMatrix($"{kb.Name}[{h}]", kb.Type, _kvl, _nope, kb.Data + h * kb.Type.ByteCount(_kvl * _nope));
            _wuv[h] = new WeightMatrix($"{vb.Name}[{h}]", vb.Type, _v, _kvl, vb.Data + h * vb.Type.ByteCount(_v * _kvl));
        }
        w.AddDerived(kb.Name, kb.ByteLength, null);
        w.AddDerived(vb.Name, vb.ByteLength, null);
    }

    /// <summary>y[n, dim] = attention of the n tokens x[n, dim] at positions [start, start+n) over the cache.</summary>
    public void Forward(DeepSeekSession s, int layer, ReadOnlySpan<float> x, Span<float> y, int n, int start)
    {
        var q = s.Q.AsSpan(0, n * _heads * _qkHead);                 // [n, heads, nope+rope]
        var kv = s.KV.AsSpan(0, n * (_kvl + _rope));                 // [n, kvl+rope] = [c_kv ; k_pe] before norm/rope
        // q (or its LoRA down-projection) and kv_a read the same x: one batch
        fixed (float* px = x, pq = q, pqa = s.QA, pkv = kv)
        {
            var b = s.Batch;
            b.Clear(n);
            b.Add(_wq ?? _wqA!, px, _wq != null ? pq : pqa);
            b.Add(_wkvA, px, pkv);
            MatMul.Multiply(b);
        }
        if (_wq == null)
        {
            var qa = s.QA.AsSpan(0, n * _wqA!.Rows);                 // [n, q_lora]
            Ops.RmsNormRows(qa, _qNorm, qa, n, _wqA.Rows, _eps);
            MatMul.Multiply(_wqB!, qa, q, n);
        }

        // RoPE on the rope parts of q (per head) and on k_pe (one per token); normalise c_kv; append to the cache.
        for (int t = 0; t < n; t++)
        {
            int pos = s.RowPosition(t, start);                       // rows of one sequence, or of several (batched decoding)
            var cache = s.RowCache(t, layer);                        // [ctx, kvl+rope]
            var rope = s.RowRope(t);
            var cos = rope.Cos(pos); var sin = rope.Sin(pos);
            for (int h = 0; h < _heads; h++)
                Ops.Rope(q.Slice((t * _heads + h) * _qkHead + _nope, _rope), cos, sin, s.RopeInterleaved);
            var row = kv.Slice(t * (_kvl + _rope), _kvl + _rope);
            var dst = cache.AsSpan(pos * (_kvl + _rope), _kvl + _rope);
            Ops.RmsNorm(row[.._kvl], _kvNorm, dst[.._kvl], _eps);
            row[_kvl..].CopyTo(dst[_kvl..]);
            Ops.Rope(dst[_kvl..], cos, sin, s.RopeInterleaved);
        }

        var o = s.O.AsSpan(0, n * _heads * _v);                      // [n, heads, v]
        bool naive = s.Mode switch
        {
            MlaMode.Naive => true,
            MlaMode.Absorbed => false,
            // Naive expansion costs heads*(nope+v)*kvl per cached token once per call, then per (query, key) pair
            // heads*(nope+rope+v) instead of absorbed heads*(2*kvl+rope): it wins when the queries are most of the keys.
            _ => n >= 8 && 2 * n >= start + n,
        };
        // The naive path expands the whole cache into one array, [tokens, heads, nope+v]; past .NET's array limit
        // (about 65K tokens for V3's 128 heads) it cannot, and absorbed attention computes the same values.
        if (naive && (long)(start + n) * _heads * (_nope + _v) > Array.MaxLength) naive = false;
        if (s.RowSessions != null) naive = false;                    // rows of different sequences: per-row caches
        if (naive) AttendNaive(s, layer, n, start);
        else AttendAbsorbed(s, layer, n, start);
        MatMul.Multiply(_wo, o, y, n);
    }

    // Absorbed attention. Per head h, with k_nope_t = W_uk_h c_t and v_t = W_uv_h c_t:
    //   q_nope·k_nope_t = q_nopeᵀ W_uk_h c_t = (W_uk_hᵀ q_nope)·c_t = q_lat·c_t          (fold W_uk into the query)
    //   Σ_t p_t v_t = W_uv_h Σ_t p_t c_t = W_uv_h o_lat                                   (fold W_uv after the sum)
    // so keys and values never leave the kvl-dimensional latent space and the cache holds only c_t and k_pe_t.
    // Tokens go in groups of DeepSeekSession.AbsorbedTokens; per group: one batch of per-head products W_ukᵀ_h q_nope,
    // one pool job of (token, head group) attention items in latent space, one batch of W_uv_h o_lat.
    private void AttendAbsorbed(DeepSeekSession s, int layer, int n, int start)
    {
        int H = _heads;
        var job = s.AbsorbedJob;
        job.Mla = this; job.Session = s; job.Layer = layer;
        fixed (float* qNope = s.QNope, qLat = s.QLat, oLat = s.OLat, oHead = s.OHead)
        {
            for (int t0 = 0; t0 < n; t0 += DeepSeekSession.AbsorbedTokens)
            {
                int T = Math.Min(DeepSeekSession.AbsorbedTokens, n - t0);
                // q_nope by head: qNope[h, t, :] = Q[t0 + t, h, :nope]
                for (int t = 0; t < T; t++)
                    for (int h = 0; h < H; h++)
                        s.Q.AsSpan(((t0 + t) * H + h) * _qkHead, _nope).CopyTo(new Span<float>(qNope + (h * T + t) * _nope, _nope));
                var b = s.Batch;
                b.Clear(T);
                for (int h = 0; h < H; h++) b.Add(_wukT[h], qNope + h * T * _nope, qLat + h * T * _kvl); // qLat[h, t, :]
                MatMul.Multiply(b);

                job.Start = start; job.First = t0; job.Tokens = T;
                job.HeadsPerItem = Ops.HeadsPerItem(H, 1, WorkerPool.Shared.ThreadCount);
                WorkerPool.Shared.Run(job, T * (H / job.HeadsPerItem), grain: 1);                         // oLat[h, t, :]

                b.Clear(T);
                for (int h = 0; h < H; h++) b.Add(_wuv[h], oLat + h * T * _kvl, oHead + h * T * _v);   // oHead[h, t, :]
                MatMul.Multiply(b);
                for (int t = 0; t < T; t++)
                    for (int h = 0; h < H; h++)
                        new ReadOnlySpan<float>(oHead + (h * T + t) * _v, _v).CopyTo(s.O.AsSpan(((t0 + t) * H + h) * _v, _v));
            }
        }
        job.Mla = null!; job.Session = null!;
    }

    /// <summary>
    /// One (token, group of heads) pair per item: all heads attend over the same latent cache, a standard
    /// multi-query attention with keys [c_kv ; k_pe] (kvl + rope) against queries [q_lat ; q_pe] and values c_kv, so
    /// <see cref="Ops.Attention"/> reads each cache row once for the whole group.
    /// </summary>
    internal sealed class AbsorbedAttention : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores, _queries;
        public MLA Mla = null!;
        public DeepSeekSession Session = null!;
        public int Layer;
        public int Start, First, Tokens;   // position of the batch's first row, the group's first row, group size
        public int HeadsPerItem;

        public void Run(int first, int end)
        {
            var m = Mla; var s = Session;
            int kvl = m._kvl, rope = m._rope, nope = m._nope, row = kvl + rope, T = Tokens, G = HeadsPerItem;
            int groups = m._heads / G;
            var queries = (_queries is { } qa && qa.Length >= G * row ? qa : (_queries = new float[G * row])).AsSpan(0, G * row); // [G, kvl+rope]
            for (int item = first; item < end; item++)
            {
                int t = item / groups, h0 = item % groups * G, pos = s.RowPosition(First + t, Start);
                var cache = s.RowCache(First + t, Layer);            // the row's own sequence
                for (int g = 0; g < G; g++)
                {
                    int h = h0 + g;
                    s.QLat.AsSpan((h * T + t) * kvl, kvl).CopyTo(queries.Slice(g * row, kvl));                          // W_uk_hᵀ q_nope
                    s.Q.AsSpan(((First + t) * m._heads + h) * m._qkHead + nope, rope).CopyTo(queries.Slice(g * row + kvl, rope)); // q_pe
                }
                int len = pos + 1;                                    // causal: keys 0..pos
                var scores = (_scores is { } a && a.Length >= G * len ? a : (_scores = new float[Math.Max(G * len, 256) * 2])).AsSpan(0, G * len);
                // oLat[h, t, :] = Σ_j p_j c_j for h in the group (head stride T * kvl)
                Ops.Attention(queries, row, G, row, cache, row, cache, row, kvl, len, s.SoftmaxScale,
                    scores, s.OLat.AsSpan((h0 * T + t) * kvl), T * kvl);
            }
        }
    }

    /// <summary>
    /// Naive attention (model.py attn_impl "naive"): expand every cached latent into per-head keys and values with
    /// one matrix-matrix product, then ordinary attention with k_h = [k_nope_h ; k_pe] and v_h.
    /// </summary>
    private void AttendNaive(DeepSeekSession s, int layer, int n, int start)
    {
        int total = start + n, row = _kvl + _rope;
        var cache = s.Cache[layer];
        var c = s.EnsureNaiveLatent(total * _kvl).AsSpan(0, total * _kvl);     // [total, kvl]
        for (int j = 0; j < total; j++) cache.AsSpan(j * row, _kvl).CopyTo(c.Slice(j * _kvl, _kvl));
        var kvExp = s.EnsureNaiveExpanded(total * _heads * (_nope + _v));      // [total, heads, nope+v]
        MatMul.Multiply(_wkvBMatrix, c, kvExp.AsSpan(0, total * _heads * (_nope + _v)), total);
        var job = s.NaiveJob;
        job.Mla = this; job.Session = s; job.Cache = cache; job.Start = start;
        WorkerPool.Shared.Run(job, n * _heads, grain: 1);
        job.Mla = null!; job.Session = null!; job.Cache = null!;
    }

    internal sealed class NaiveAttention : IRangeJob
    {
        [ThreadStatic] private static float[]? _scores;
        public MLA Mla = null!;
        public DeepSeekSession Session = null!;
        public float[] Cache = null!;
        public int Start;

        public void Run(int first, int end)
        {
            var m = Mla; var s = Session;
            int kvl = m._kvl, rope = m._rope, nope = m._nope, v = m._v, row = kvl + rope, H = m._heads;
            var kv = s.NaiveExpanded!;
            for (int item = first; item < end; item++)
            {
                int t = item / H, h = item % H, pos = Start + t;
                var q = s.Q.AsSpan((t * H + h) * m._qkHead, m._qkHead);
                int len = pos + 1;
                var scores = (_scores is { } a && a.Length >= len ? a : (_scores = new float[Math.Max(len, 256) * 2])).AsSpan(0, len);
                for (int j = 0; j < len; j++)
                {
                    var kNope = kv.AsSpan((j * H + h) * (nope + v), nope);
                    var kPe = Cache.AsSpan(j * row + kvl, rope);
                    scores[j] = (TensorPrimitives.Dot(q[..nope], kNope) + TensorPrimitives.Dot(q[nope..], kPe)) * s.SoftmaxScale;
                }
                Ops.Softmax(scores);
                var o = s.O.AsSpan((t * H + h) * v, v);
                o.Clear();
                for (int j = 0; j < len; j++)
                    TensorPrimitives.MultiplyAdd(kv.AsSpan((j * H + h) * (nope + v) + nope, v), scores[j], o, o);
            }
        }
    }
}
