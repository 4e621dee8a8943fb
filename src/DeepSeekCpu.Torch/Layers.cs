using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekCpu.Torch;

/// <summary>
/// What a layer needs to load its weights: the engine's weights by HF name, the device, the compute type and whether
/// Q8_0/Q4_0 stay packed (<see cref="WeightStorage"/>).
/// </summary>
internal sealed class LayerLoader(ModelWeights w, ModelConfig c, Device device, ScalarType dtype, bool packed = true)
{
    public ModelWeights Weights => w;
    public ModelConfig Config => c;
    public Device Device => device;
    public ScalarType DType => dtype;
    public readonly List<IDisposable> Owned = [];

    /// <summary>A linear weight [rows, cols] (FP8 scales from "{name}_scale_inv"; the shape is checked by the engine).</summary>
    public DeviceWeight Linear(string name, int rows, int cols) => Own(DeviceWeight.Load(w.RawMatrix(name, rows, cols), device, dtype, packed));

    /// <summary>A norm weight or bias as float32 [length].</summary>
    public Tensor Vector(string name, int length) => Own(tensor(w.Vector(name, length), [length], ScalarType.Float32, device));

    public T Own<T>(T d) where T : IDisposable { Owned.Add(d); return d; }
}

/// <summary>RMSNorm (model.py class RMSNorm): x / rms(x) · weight, computed in float32.</summary>
internal sealed class RMSNorm(Tensor weight, float eps)
{
    public Tensor Forward(Tensor x)
    {
        var xf = x.to(ScalarType.Float32);
        return (xf * (xf.pow(2).mean([-1], keepdim: true) + eps).rsqrt() * weight).to(x.dtype);
    }
}

/// <summary>
/// Rotary embedding (model.py precompute_freqs_cis / apply_rotary_emb): cos and sin [positions, dim/2] come from the
/// engine's <see cref="RopeTable"/> (plain, llama3 or YaRN scaling, the YaRN mscale folded in), so the frequencies are
/// not computed twice. Pairs are (2i, 2i+1) when interleaved (DeepSeek, llama2.c, GGUF llama), else (i, i+dim/2).
/// </summary>
internal sealed class Rope : IDisposable
{
    private readonly Tensor _cos, _sin;   // [positions, dim/2] float32
    private readonly bool _interleaved;
    public int Positions { get; }

    public Rope(RopeTable table, bool interleaved, Device device)
    {
        int half = table.Dim / 2;
        Positions = table.MaxPositions;
        var cos = new float[(long)Positions * half];
        var sin = new float[(long)Positions * half];
        for (int p = 0; p < Positions; p++)
        {
            table.Cos(p).CopyTo(cos.AsSpan(p * half, half));
            table.Sin(p).CopyTo(sin.AsSpan(p * half, half));
        }
        _cos = tensor(cos, [Positions, half], ScalarType.Float32, device);
        _sin = tensor(sin, [Positions, half], ScalarType.Float32, device);
        _interleaved = interleaved;
    }

    /// <summary>x [n, heads, dim] at positions start..start+n−1, rotated in float32.</summary>
    public Tensor Apply(Tensor x, int start)
    {
        long n = x.shape[0], half = x.shape[2] / 2;
        var cos = _cos.narrow(0, start, n).unsqueeze(1);                 // [n, 1, half]
        var sin = _sin.narrow(0, start, n).unsqueeze(1);
        var xf = x.to(ScalarType.Float32);
        Tensor a, b;
        if (_interleaved) { var pairs = xf.view(n, x.shape[1], half, 2); a = pairs.select(-1, 0); b = pairs.select(-1, 1); }
        else { a = xf.narrow(-1, 0, half); b = xf.narrow(-1, half, half); }
        var ra = a * cos - b * sin;
        var rb = a * sin + b * cos;
        var y = _interleaved ? stack([ra, rb], -1).flatten(2) : cat([ra, rb], -1);
        return y.to(x.dtype);
    }

    public void Dispose() { _cos.Dispose(); _sin.Dispose(); }
}

/// <summary>One sequence's cache of one layer: keys and values (GQA), or the latent c_kv and the rope key k_pe (MLA).</summary>
internal sealed class LayerCache(Tensor a, Tensor b) : IDisposable
{
    public readonly Tensor A = a, B = b;   // [ctx, ...] each
    public void Dispose() { A.Dispose(); B.Dispose(); }
}

/// <summary>Scores [s, heads, t] (float32) of queries at start.. over keys 0..t−1: causal mask, softmax.</summary>
internal static class Causal
{
    public static Tensor Softmax(Tensor scores, int start)
    {
        long s = scores.shape[0], t = scores.shape[2];
        if (s > 1)
        {
            // key j is hidden from query i (position start+i) when j > start+i
            var mask = full([s, t], float.NegativeInfinity, ScalarType.Float32, scores.device).triu(start + 1);
            scores = scores + mask.unsqueeze(1);
        }
        return scores.softmax(-1);
    }
}

/// <summary>An attention layer over its cache (GQA or MLA).</summary>
internal interface IAttention
{
    LayerCache NewCache(int contextLength);
    /// <summary>x [n, dim] at positions start..start+n−1; appends the tokens to the cache; returns [n, dim].</summary>
    Tensor Forward(Tensor x, int start, LayerCache cache);
}

/// <summary>A feed-forward layer: dense MLP or MoE. x [n, dim] → [n, dim].</summary>
internal interface IFeedForward
{
    Tensor Forward(Tensor x);
    /// <summary>Bytes of weights one token reads (MoE: the chosen experts' share).</summary>
    long BytesPerToken { get; }
}

/// <summary>Grouped-query attention of Llama / Qwen2 (q/k/v biases for Qwen2).</summary>
internal sealed class Attention : IAttention
{
    private readonly DeviceWeight _wq, _wk, _wv, _wo;     // [heads*hd, dim], [kv*hd, dim] x2, [dim, heads*hd]
    private readonly Tensor? _bq, _bk, _bv;
    private readonly int _heads, _kvHeads, _hd;
    private readonly Func<Rope> _rope;
    private readonly ScalarType _dtype;
    private readonly Device _device;

    public long Bytes => _wq.Bytes + _wk.Bytes + _wv.Bytes + _wo.Bytes;

    public Attention(LayerLoader l, string p, Func<Rope> rope)
    {
        var c = l.Config;
        _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _hd = c.HeadDim; _rope = rope; _dtype = l.DType; _device = l.Device;
        int q = _heads * _hd, kv = _kvHeads * _hd, dim = c.HiddenSize;
        _wq = l.Linear(p + "q_proj.weight", q, dim);
        _wk = l.Linear(p + "k_proj.weight", kv, dim);
        _wv = l.Linear(p + "v_proj.weight", kv, dim);
        _wo = l.Linear(p + "o_proj.weight", dim, q);
        if (c.AttentionBias)
        {
            _bq = l.Vector(p + "q_proj.bias", q).to(_dtype);
            _bk = l.Vector(p + "k_proj.bias", kv).to(_dtype);
            _bv = l.Vector(p + "v_proj.bias", kv).to(_dtype);
        }
    }

    public LayerCache NewCache(int ctx) =>
        new(zeros([ctx, _kvHeads, _hd], _dtype, _device), zeros([ctx, _kvHeads, _hd], _dtype, _device));

    public Tensor Forward(Tensor x, int start, LayerCache cache)
    {
        long n = x.shape[0];
        int end = start + (int)n;
        var q = _wq.Forward(x); var k = _wk.Forward(x); var v = _wv.Forward(x);
        if (_bq is not null) { q = q + _bq; k = k + _bk!; v = v + _bv!; }
        var rope = _rope();
        q = rope.Apply(q.view(n, _heads, _hd), start);                 // [n, heads, hd]
        k = rope.Apply(k.view(n, _kvHeads, _hd), start);               // [n, kv heads, hd]
        cache.A.narrow(0, start, n).copy_(k);
        cache.B.narrow(0, start, n).copy_(v.view(n, _kvHeads, _hd));
        int group = _heads / _kvHeads;                                 // query heads per key/value head
        var keys = cache.A.narrow(0, 0, end).repeat_interleave(group, 1);    // [t, heads, hd]
        var values = cache.B.narrow(0, 0, end).repeat_interleave(group, 1);  // [t, heads, hd]
        var scores = einsum("shd,thd->sht", q.to(ScalarType.Float32), keys.to(ScalarType.Float32)) / MathF.Sqrt(_hd);
        var p = Causal.Softmax(scores, start).to(_dtype);              // [s, heads, t]
        var o = einsum("sht,thd->shd", p, values);                     // [s, heads, hd]
        return _wo.Forward(o.reshape(n, _heads * _hd));
    }
}

/// <summary>
/// Multi-head Latent Attention (model.py class MLA, attn_impl "absorb"): the cache holds the normalised latent c_kv
/// [ctx, kvl] and the rotated rope key k_pe [ctx, rope] per token, shared by all heads. Per head h, with
/// k_nope_t = W_uk_h c_t and v_t = W_uv_h c_t: q_nope·k_nope_t = (W_uk_hᵀ q_nope)·c_t and Σ_t p_t v_t = W_uv_h Σ_t p_t c_t,
/// so scores and values are computed in the latent space and wkv_b is applied to queries and outputs only.
/// </summary>
internal sealed class MLA : IAttention
{
    private readonly DeviceWeight? _wq, _wqA, _wqB;       // wq [heads*(nope+rope), dim] or wq_a [q_lora, dim], wq_b [heads*(nope+rope), q_lora]
    private readonly RMSNorm? _qNorm;
    private readonly DeviceWeight _wkvA;                  // [kvl+rope, dim]
    private readonly RMSNorm _kvNorm;
    private readonly Tensor _wkvB;                        // [heads, nope+v, kvl] compute type
    private readonly DeviceWeight _wo;                    // [dim, heads*v]
    private readonly int _heads, _nope, _rope, _v, _kvl;
    private readonly float _softmaxScale;
    private readonly Func<Rope> _ropeTable;
    private readonly ScalarType _dtype;
    private readonly Device _device;

    public long Bytes => (_wq?.Bytes ?? 0) + (_wqA?.Bytes ?? 0) + (_wqB?.Bytes ?? 0) + _wkvA.Bytes + _wkvB.NumberOfElements * _wkvB.ElementSize + _wo.Bytes;

    public MLA(LayerLoader l, string p, float softmaxScale, Func<Rope> rope)
    {
        var c = l.Config;
        int dim = c.HiddenSize;
        _heads = c.NumHeads; _nope = c.QkNopeHeadDim; _rope = c.QkRopeHeadDim; _v = c.VHeadDim; _kvl = c.KvLoraRank;
        _softmaxScale = softmaxScale; _ropeTable = rope; _dtype = l.DType; _device = l.Device;
        int qk = _heads * (_nope + _rope);
        if (c.QLoraRank is int qr && qr > 0)
        {
            _wqA = l.Linear(p + "q_a_proj.weight", qr, dim);
            _qNorm = new RMSNorm(l.Vector(p + "q_a_layernorm.weight", qr), c.RmsNormEps);
            _wqB = l.Linear(p + "q_b_proj.weight", qk, qr);
        }
        else _wq = l.Linear(p + "q_proj.weight", qk, dim);
        _wkvA = l.Linear(p + "kv_a_proj_with_mqa.weight", _kvl + _rope, dim);
        _kvNorm = new RMSNorm(l.Vector(p + "kv_a_layernorm.weight", _kvl), c.RmsNormEps);
        _wo = l.Linear(p + "o_proj.weight", dim, _heads * _v);
        _wkvB = l.Own(LoadKvB(l, p));
    }

    /// <summary>
    /// wkv_b as [heads, nope+v, kvl]: HF's kv_b_proj [heads*(nope+v), kvl], or the split form of newer GGUF files
    /// (k_b_proj [heads, kvl, nope] = W_ukᵀ per head, v_b_proj [heads, v, kvl] = W_uv), as the engine's MlaWeights reads them.
    /// </summary>
    private Tensor LoadKvB(LayerLoader l, string p)
    {
        var w = l.Weights;
        if (w.Contains(p + "kv_b_proj.weight"))
        {
            using var kvB = DeviceWeight.Expand(w.RawMatrix(p + "kv_b_proj.weight", _heads * (_nope + _v), _kvl), _device, _dtype);
            return kvB.view(_heads, _nope + _v, _kvl).clone();
        }
        var (kb, vb) = DeepSeekCpu.Models.DeepSeek.MlaWeights.SplitKvB(w, p, _heads, _kvl, _nope, _v);
        using var scope = NewDisposeScope();
        var uk = DeviceWeight.Expand(kb, _device, _dtype)
            .view(_heads, _kvl, _nope).transpose(1, 2);                                  // [heads, nope, kvl]
        var uv = DeviceWeight.Expand(vb, _device, _dtype)
            .view(_heads, _v, _kvl);                                                     // [heads, v, kvl]
        return cat([uk, uv], 1).contiguous().MoveToOuterDisposeScope();
    }

    public LayerCache NewCache(int ctx) =>
        new(zeros([ctx, _kvl], _dtype, _device), zeros([ctx, _rope], _dtype, _device));

    public Tensor Forward(Tensor x, int start, LayerCache cache)
    {
        long n = x.shape[0];
        int end = start + (int)n;
        var q = (_wq != null ? _wq.Forward(x) : _wqB!.Forward(_qNorm!.Forward(_wqA!.Forward(x)))).view(n, _heads, _nope + _rope);
        var qNope = q.narrow(-1, 0, _nope);                            // [n, heads, nope]
        var qPe = _ropeTable().Apply(q.narrow(-1, _nope, _rope), start); // [n, heads, rope]
        var kv = _wkvA.Forward(x);                                     // [n, kvl+rope]
        var kPe = _ropeTable().Apply(kv.narrow(-1, _kvl, _rope).unsqueeze(1), start).squeeze(1);   // [n, rope]
        cache.A.narrow(0, start, n).copy_(_kvNorm.Forward(kv.narrow(-1, 0, _kvl)));
        cache.B.narrow(0, start, n).copy_(kPe);

        var kvCache = cache.A.narrow(0, 0, end);                       // [t, kvl]
        var peCache = cache.B.narrow(0, 0, end);                       // [t, rope]
        var qLat = einsum("shd,hdc->shc", qNope, _wkvB.narrow(1, 0, _nope));   // W_ukᵀ q_nope: [n, heads, kvl]
        var scores = (einsum("shc,tc->sht", qLat.to(ScalarType.Float32), kvCache.to(ScalarType.Float32))
                    + einsum("shr,tr->sht", qPe.to(ScalarType.Float32), peCache.to(ScalarType.Float32))) * _softmaxScale;
        var p = Causal.Softmax(scores, start).to(_dtype);              // [n, heads, t]
        var oLat = einsum("sht,tc->shc", p, kvCache);                  // [n, heads, kvl]
        var o = einsum("shc,hdc->shd", oLat, _wkvB.narrow(1, _nope, _v));      // W_uv o_lat: [n, heads, v]
        return _wo.Forward(o.reshape(n, _heads * _v));
    }
}

/// <summary>SwiGLU MLP (model.py class MLP / Expert): w2(silu(w1 x) · w3 x); HF gate_proj = w1, down_proj = w2, up_proj = w3.</summary>
internal sealed class MLP(LayerLoader l, string p, int dim, int inter) : IFeedForward
{
    private readonly DeviceWeight _w1 = l.Linear(p + "gate_proj.weight", inter, dim);    // [inter, dim]
    private readonly DeviceWeight _w2 = l.Linear(p + "down_proj.weight", dim, inter);    // [dim, inter]
    private readonly DeviceWeight _w3 = l.Linear(p + "up_proj.weight", inter, dim);      // [inter, dim]

    public long BytesPerToken => _w1.Bytes + _w2.Bytes + _w3.Bytes;

    public Tensor Forward(Tensor x) => _w2.Forward(nn.functional.silu(_w1.Forward(x)) * _w3.Forward(x));
}

/// <summary>
/// The router (model.py class Gate), following the config as the engine's Gate does: scoring_func softmax | sigmoid;
/// e_score_correction_bias shifts the selection, never the weights; with n_group > 1 and topk_method noaux_tc
/// (group score: sum of the group's top 2) or group_limited_greedy (the group's max) only the topk_group best groups
/// compete; norm_topk_prob; routed_scaling_factor.
/// </summary>
internal sealed class Gate
{
    private readonly DeviceWeight _weight;   // [n_experts, dim]
    private readonly Tensor? _bias;          // [n_experts] float32
    private readonly int _topk, _groups, _topkGroups;
    private readonly bool _sigmoid, _groupLimit, _top2Sum, _normalize;
    private readonly float _routeScale;

    public long Bytes => _weight.Bytes;

    public Gate(LayerLoader l, string p)
    {
        var c = l.Config;
        int experts = c.NRoutedExperts;
        _weight = l.Linear(p + "weight", experts, c.HiddenSize);
        if (l.Weights.Contains(p + "e_score_correction_bias")) _bias = l.Vector(p + "e_score_correction_bias", experts);
        if (c.ScoringFunc is not ("sigmoid" or "softmax"))
            throw new ModelFormatException($"{l.Weights.Source}: scoring_func \"{c.ScoringFunc}\" is not supported (expected softmax or sigmoid)");
        if (c.TopkMethod is not ("noaux_tc" or "group_limited_greedy" or "greedy"))
            throw new ModelFormatException($"{l.Weights.Source}: topk_method \"{c.TopkMethod}\" is not supported (expected greedy, group_limited_greedy or noaux_tc)");
        _sigmoid = c.ScoringFunc == "sigmoid";
        _topk = c.NumExpertsPerTok; _groups = Math.Max(1, c.NGroup); _topkGroups = c.TopkGroup;
        _groupLimit = _groups > 1 && c.TopkMethod != "greedy";
        _top2Sum = c.TopkMethod == "noaux_tc";
        if (_groupLimit && (experts % _groups != 0 || _topkGroups < 1 || _topkGroups > _groups))
            throw new ModelFormatException($"{l.Weights.Source}: {experts} experts cannot be split into n_group {_groups} with topk_group {_topkGroups}");
        _normalize = c.NormTopkProb;
        _routeScale = (float)c.RoutedScalingFactor;
    }

    /// <summary>x [n, dim] → (weights [n, k] float32, indices [n, k]).</summary>
    public (Tensor weights, Tensor indices) Forward(Tensor x)
    {
        var scores = _weight.Forward(x).to(ScalarType.Float32);        // [n, experts]
        scores = _sigmoid ? scores.sigmoid() : scores.softmax(-1);
        var original = scores;
        if (_bias is not null) scores = scores + _bias;
        if (_groupLimit)
        {
            long n = x.shape[0];
            var grouped = scores.view(n, _groups, -1);                 // [n, groups, experts/group]
            var groupScores = _top2Sum && grouped.shape[2] >= 2 ? grouped.topk(2, -1).values.sum(-1) : grouped.amax(-1);
            var best = groupScores.topk(_topkGroups, -1).indexes;      // [n, topk_group]
            var dropped = ones([n, _groups], ScalarType.Bool, x.device).scatter(1, best, zeros_like(best, ScalarType.Bool));
            scores = grouped.masked_fill(dropped.unsqueeze(-1), float.NegativeInfinity).flatten(1);
        }
        var indices = scores.topk(_topk, -1).indexes;                  // [n, k]
        var weights = original.gather(1, indices);                     // unbiased scores of the chosen
        if (_normalize) weights = weights / weights.sum(-1, keepdim: true);
        return (weights * _routeScale, indices);
    }
}

/// <summary>
/// DeepSeekMoE (model.py class MoE): y = Σ_chosen weight_e · Expert_e(x) + SharedExperts(x); each chosen expert runs
/// once over the tokens that chose it, experts nobody chose are never expanded.
/// </summary>
internal sealed class MoE : IFeedForward
{
    private readonly Gate _gate;
    private readonly MLP[] _experts;
    private readonly MLP? _shared;
    private readonly int _topk;

    public long BytesPerToken => _gate.Bytes + (_shared?.BytesPerToken ?? 0)
        + (_experts.Length == 0 ? 0 : _experts[0].BytesPerToken * _topk);

    public MoE(LayerLoader l, string p)
    {
        var c = l.Config;
        _topk = c.NumExpertsPerTok;
        _gate = new Gate(l, p + "gate.");
        _experts = new MLP[c.NRoutedExperts];
        for (int e = 0; e < _experts.Length; e++) _experts[e] = new MLP(l, $"{p}experts.{e}.", c.HiddenSize, c.MoeIntermediateSize);
        if (c.NSharedExperts > 0) _shared = new MLP(l, p + "shared_experts.", c.HiddenSize, c.NSharedExperts * c.MoeIntermediateSize);
    }

    public Tensor Forward(Tensor x)
    {
        var (weights, indices) = _gate.Forward(x);                     // [n, k] each
        var y = zeros_like(x);
        var counts = bincount(indices.flatten(), minlength: _experts.Length).cpu().data<long>().ToArray();
        for (int e = 0; e < _experts.Length; e++)
        {
            if (counts[e] == 0) continue;
            var where = (indices == e).nonzero();                      // [m, 2] (token, slot)
            var token = where.select(1, 0);
            var slot = where.select(1, 1);
            var w = weights[token, slot].unsqueeze(1).to(x.dtype);      // [m, 1]
            y.index_add_(0, token, _experts[e].Forward(x.index_select(0, token)) * w, 1);
        }
        return _shared is null ? y : y + _shared.Forward(x);
    }
}
