using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>A block's feed-forward half: a dense MLP or a mixture of experts.</summary>
internal interface IFeedForward
{
    /// <summary>y[n, dim] = FFN(x[n, dim]).</summary>
    void Forward(DeepSeekSession s, ReadOnlySpan<float> x, Span<float> y, int n);
}

/// <summary>
/// SwiGLU MLP: down(silu(gate x) * up x) (model.py class MLP / Expert; HF gate_proj = w1, down_proj = w2, up_proj = w3).
/// Dense layers, each routed expert and the shared experts (one MLP of width n_shared · moe_intermediate) are MLPs.
/// </summary>
internal sealed unsafe class MLP : IFeedForward
{
    private readonly WeightMatrix _w1, _w2, _w3; // gate [inter, dim], down [dim, inter], up [inter, dim]
    public int Inter => _w1.Rows;

    public MLP(ModelWeights w, string p, int dim, int inter)
    {
        _w1 = w.Matrix(p + "gate_proj.weight", inter, dim);
        _w2 = w.Matrix(p + "down_proj.weight", dim, inter);
        _w3 = w.Matrix(p + "up_proj.weight", inter, dim);
    }

    public void Forward(DeepSeekSession s, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        var g = s.Hidden1.AsSpan(0, n * Inter);   // [n, inter]
        var u = s.Hidden2.AsSpan(0, n * Inter);   // [n, inter]
        fixed (float* px = x, pg = g, pu = u)
        {
            s.Batch.Clear(n);
            AddGateUp(s.Batch, px, pg, pu);
            MatMul.Multiply(s.Batch);
        }
        Ops.SwiGlu(g, u);
        MatMul.Multiply(_w2, g, y, n);
    }

    /// <summary>Adds g = gate x and u = up x ([n, inter] each) to a batch.</summary>
    public void AddGateUp(MatMulBatch b, float* x, float* g, float* u) => AddGateUp(b, x, g, u, b.Tokens);

    /// <summary>Adds g = gate x and u = up x ([tokens, inter] each) to a batch.</summary>
    public void AddGateUp(MatMulBatch b, float* x, float* g, float* u, int tokens)
    {
        b.Add(_w1, x, g, tokens);
        b.Add(_w3, x, u, tokens);
    }

    /// <summary>Adds y = down h ([n, dim]) to a batch.</summary>
    public void AddDown(MatMulBatch b, float* h, float* y) => b.Add(_w2, h, y);

    /// <summary>Adds y = down h ([tokens, dim]) to a batch.</summary>
    public void AddDown(MatMulBatch b, float* h, float* y, int tokens) => b.Add(_w2, h, y, tokens);
}

/// <summary>
/// The router (model.py class Gate): scores every routed expert, limits the choice to the best groups, picks the top k
/// and weighs them. Every step follows the config: scoring_func (softmax | sigmoid), e_score_correction_bias (selects,
/// never weighs), n_group/topk_group with topk_method (noaux_tc: group score = sum of the group's top 2;
/// group_limited_greedy: the group's max; greedy: no group limit), norm_topk_prob, routed_scaling_factor.
/// </summary>
internal sealed class Gate
{
    private readonly WeightMatrix _weight;   // [n_experts, dim]
    private readonly float[]? _bias;         // [n_experts] e_score_correction_bias
    private readonly int _experts, _topk, _groups, _topkGroups;
    private readonly bool _sigmoid, _normalize, _groupTop2Sum, _groupLimit;
    private readonly float _routeScale;

    public int TopK => _topk;

    public Gate(ModelWeights w, ModelConfig c, string p)
    {
        _experts = c.NRoutedExperts; _topk = c.NumExpertsPerTok;
        _weight = w.Matrix(p + "weight", _experts, c.HiddenSize);
        if (w.Contains(p + "e_score_correction_bias")) _bias = w.Vector(p + "e_score_correction_bias", _experts);
        _sigmoid = c.ScoringFunc switch
        {
            "sigmoid" => true,
            "softmax" => false,
            _ => throw new ModelFormatException($"{w.Source}: scoring_func \"{c.ScoringFunc}\" is not supported (expected softmax or sigmoid)"),
        };
        _groups = Math.Max(1, c.NGroup); _topkGroups = c.TopkGroup;
        _groupLimit = _groups > 1 && c.TopkMethod != "greedy";
        _groupTop2Sum = c.TopkMethod switch
        {
            "noaux_tc" => true,
            "group_limited_greedy" or "greedy" => false,
            _ => throw new ModelFormatException($"{w.Source}: topk_method \"{c.TopkMethod}\" is not supported (expected greedy, group_limited_greedy or noaux_tc)"),
        };
        if (_groupLimit && (_experts % _groups != 0 || _topkGroups < 1 || _topkGroups > _groups))
            throw new ModelFormatException($"{w.Source}: {_experts} experts cannot be split into n_group {_groups} with topk_group {_topkGroups}");
        if (_topk < 1 || _topk > _experts)
            throw new ModelFormatException($"{w.Source}: num_experts_per_tok {_topk} must be in 1..{_experts}");
        _normalize = c.NormTopkProb;
        _routeScale = (float)c.RoutedScalingFactor;
    }

    /// <summary>Router logits for n tokens: [n, n_experts].</summary>
    public void Logits(ReadOnlySpan<float> x, Span<float> logits, int n) => MatMul.Multiply(_weight, x, logits, n);

    /// <summary>
    /// Chooses <see cref="TopK"/> experts for one token from its router logits (overwritten: they become the scores).
    /// <paramref name="select"/> ([n_experts]) and <paramref name="groupScratch"/> ([2 * n_group]) are scratch.
    /// </summary>
    public void Route(Span<float> logits, Span<float> select, Span<float> groupScratch, Span<int> indices, Span<float> weights)
    {
        var scores = logits;                                   // [n_experts]
        if (_sigmoid) TensorPrimitives.Sigmoid(scores, scores);
        else Ops.Softmax(scores);
        // The bias shifts which experts are selected; the weights below use the unbiased scores.
        if (_bias != null) TensorPrimitives.Add(scores, _bias, select);
        else scores.CopyTo(select);

        if (_groupLimit)
        {
            int per = _experts / _groups;
            var groupScores = groupScratch[.._groups];         // [n_group]
            var kept = groupScratch.Slice(_groups, _groups);   // [n_group] 1 = kept
            for (int g = 0; g < _groups; g++)
            {
                var grp = select.Slice(g * per, per);
                if (_groupTop2Sum && per >= 2)
                {
                    // sum of the two largest (model.py: scores.topk(2, dim=-1)[0].sum(dim=-1))
                    float a = float.NegativeInfinity, b = float.NegativeInfinity;
                    foreach (float v in grp) { if (v > a) { b = a; a = v; } else if (v > b) b = v; }
                    groupScores[g] = a + b;
                }
                else groupScores[g] = TensorPrimitives.Max(grp);
            }
            kept.Clear();
            for (int k = 0; k < _topkGroups; k++)
            {
                int best = -1;
                for (int g = 0; g < _groups; g++)
                    if (kept[g] == 0 && (best < 0 || groupScores[g] > groupScores[best])) best = g;
                kept[best] = 1;
            }
            // every expert outside the kept groups gets −∞ (DeepSeek's masked_fill; HF's V3 code uses 0.0)
            for (int g = 0; g < _groups; g++)
                if (kept[g] == 0) select.Slice(g * per, per).Fill(float.NegativeInfinity);
        }

        // top-k by selection score (k is small: repeated arg-max; the first of equal values wins)
        for (int k = 0; k < _topk; k++)
        {
            int best = -1;
            for (int e = 0; e < _experts; e++)
                if (!float.IsNaN(select[e]) && (best < 0 || select[e] > select[best])) best = e;
            indices[k] = best;
            weights[k] = scores[best];                           // the original score, without the bias
            select[best] = float.NaN;                            // chosen: never again
        }
        var wk = weights[.._topk];
        if (_normalize) TensorPrimitives.Divide(wk, TensorPrimitives.Sum(wk), wk);
        TensorPrimitives.Multiply(wk, _routeScale, wk);
    }
}

/// <summary>
/// DeepSeekMoE (model.py class MoE): y = Σ_{chosen e} weight_e · Expert_e(x) + SharedExperts(x).
/// Tokens are grouped by expert so that each chosen expert runs once over all its tokens (matrix-matrix in prefill,
/// matrix-vector when decoding one token); experts nobody chose are never read.
/// </summary>
internal sealed unsafe class MoE : IFeedForward
{
    private readonly Gate _gate;
    private readonly MLP[] _experts;
    private readonly MLP? _shared;
    private readonly int _dim, _nExperts;

    public MoE(ModelWeights w, ModelConfig c, string p)
    {
        _dim = c.HiddenSize; _nExperts = c.NRoutedExperts;
        _gate = new Gate(w, c, p + "gate.");
        _experts = new MLP[_nExperts];
        for (int e = 0; e < _nExperts; e++) _experts[e] = new MLP(w, $"{p}experts.{e}.", _dim, c.MoeIntermediateSize);
        if (c.NSharedExperts > 0) _shared = new MLP(w, p + "shared_experts.", _dim, c.NSharedExperts * c.MoeIntermediateSize);
    }

    public void Forward(DeepSeekSession s, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        int k = _gate.TopK;
        var logits = s.RouterLogits.AsSpan(0, n * _nExperts);        // [n, n_experts]
        var chosen = s.Chosen.AsSpan(0, n * k);                      // [n, k] expert ids
        var weights = s.ChosenWeights.AsSpan(0, n * k);              // [n, k]
        _gate.Logits(x, logits, n);
        for (int t = 0; t < n; t++)
            _gate.Route(logits.Slice(t * _nExperts, _nExperts), s.RouterSelect, s.GroupScratch,
                chosen.Slice(t * k, k), weights.Slice(t * k, k));
        bool few = n <= SmallBatch && n * (k + 1) <= DeepSeekSession.MaxBatch;   // fits the scratch rows

        // Group (token, slot) pairs by expert: counting sort into s.Slots.
        var counts = s.ExpertCount.AsSpan(0, _nExperts + 1);         // [n_experts + 1] → start offsets
        counts.Clear();
        foreach (int e in chosen) counts[e + 1]++;
        for (int e = 0; e < _nExperts; e++) counts[e + 1] += counts[e];
        var slots = s.Slots.AsSpan(0, n * k);                        // [n*k] (token*k + slot), grouped by expert
        var fill = s.ExpertFill.AsSpan(0, _nExperts);
        counts[.._nExperts].CopyTo(fill);
        for (int i = 0; i < n * k; i++) slots[fill[chosen[i]]++] = i;

        if (few)
        {
            ForwardFew(s, x, y, n, counts, slots, weights);
            return;
        }
        y[..(n * _dim)].Clear();
        for (int e = 0; e < _nExperts; e++)
        {
            int first = counts[e], m = counts[e + 1] - first;
            if (m == 0) continue;
            var xs = s.ExpertIn.AsSpan(0, m * _dim);                 // [m, dim] gathered rows
            var ys = s.ExpertOut.AsSpan(0, m * _dim);                // [m, dim]
            for (int i = 0; i < m; i++) x.Slice(slots[first + i] / k * _dim, _dim).CopyTo(xs.Slice(i * _dim, _dim));
            _experts[e].Forward(s, xs, ys, m);
            for (int i = 0; i < m; i++)
            {
                int slot = slots[first + i];
                var dst = y.Slice(slot / k * _dim, _dim);
                TensorPrimitives.MultiplyAdd(ys.Slice(i * _dim, _dim), weights[slot], dst, dst);
            }
        }
        if (_shared != null)
        {
            var z = s.ExpertOut.AsSpan(0, n * _dim);                 // [n, dim]
            _shared.Forward(s, x, z, n);
            TensorPrimitives.Add(y[..(n * _dim)], z, y[..(n * _dim)]);
        }
    }

    /// <summary>Up to this many tokens (a batched decoding step) the experts run as two batches (<see cref="ForwardFew"/>).</summary>
    private const int SmallBatch = 16;

    /// <summary>
    /// A few tokens (a batched decoding step): every chosen expert over the rows that chose it, and the shared experts
    /// over all rows, as two batches (all gate/up products, then all down products, each over its own row count)
    /// instead of three dispatches per expert. Sums run in expert order, as in the grouped path.
    /// </summary>
    private void ForwardFew(DeepSeekSession s, ReadOnlySpan<float> x, Span<float> y, int n, Span<int> counts, Span<int> slots, Span<float> weights)
    {
        int k = _gate.TopK, inter = _experts[0].Inter, routedRows = n * k;
        // [n*k, dim] rows grouped by expert; an expert with a single row reads it in place (so when decoding one token
        // every expert reads x itself, and its activations are quantized once for all of them)
        var xs = s.ExpertIn.AsSpan(0, routedRows * _dim);
        for (int e = 0; e < _nExperts; e++)
            if (counts[e + 1] - counts[e] > 1)
                for (int i = counts[e]; i < counts[e + 1]; i++) x.Slice(slots[i] / k * _dim, _dim).CopyTo(xs.Slice(i * _dim, _dim));
        int hiddenLength = routedRows * inter + n * (_shared?.Inter ?? 0);          // routed [n*k, inter], then shared [n, shared inter]
        var b = s.Batch;
        fixed (float* px = x, pin = s.ExpertIn, pg = s.Hidden1, pu = s.Hidden2, po = s.ExpertOut)
        {
            b.Clear(n);
            for (int e = 0; e < _nExperts; e++)
            {
                int first = counts[e], m = counts[e + 1] - first;
                float* input = m == 1 ? px + slots[first] / k * _dim : pin + first * _dim;
                if (m > 0) _experts[e].AddGateUp(b, input, pg + first * inter, pu + first * inter, m);
            }
            _shared?.AddGateUp(b, px, pg + routedRows * inter, pu + routedRows * inter, n);
            MatMul.Multiply(b);
            Ops.SwiGlu(s.Hidden1.AsSpan(0, hiddenLength), s.Hidden2.AsSpan(0, hiddenLength));
            b.Clear(n);
            for (int e = 0; e < _nExperts; e++)
            {
                int first = counts[e], m = counts[e + 1] - first;
                if (m > 0) _experts[e].AddDown(b, pg + first * inter, po + first * _dim, m);
            }
            _shared?.AddDown(b, pg + routedRows * inter, po + routedRows * _dim, n);
            MatMul.Multiply(b);
        }
        y[..(n * _dim)].Clear();
        for (int i = 0; i < routedRows; i++)                                       // expert order, as the grouped path
        {
            int slot = slots[i];
            var dst = y.Slice(slot / k * _dim, _dim);
            TensorPrimitives.MultiplyAdd(s.ExpertOut.AsSpan(i * _dim, _dim), weights[slot], dst, dst);
        }
        if (_shared != null)
            TensorPrimitives.Add(y[..(n * _dim)], s.ExpertOut.AsSpan(routedRows * _dim, n * _dim), y[..(n * _dim)]);
    }
}
