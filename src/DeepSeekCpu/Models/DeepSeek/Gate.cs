using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

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
        _sigmoid = c.ScoringFunc == "sigmoid";
        if (c.ScoringFunc is not ("sigmoid" or "softmax"))
            throw new ModelFormatException($"{w.Source}: scoring_func \"{c.ScoringFunc}\" is not supported (expected softmax or sigmoid)");
        _groups = Math.Max(1, c.NGroup); _topkGroups = c.TopkGroup;
        _groupLimit = _groups > 1 && c.TopkMethod != "greedy";
        _groupTop2Sum = c.TopkMethod == "noaux_tc";
        if (c.TopkMethod is not ("noaux_tc" or "group_limited_greedy" or "greedy"))
            throw new ModelFormatException($"{w.Source}: topk_method \"{c.TopkMethod}\" is not supported (expected greedy, group_limited_greedy or noaux_tc)");
        if (_groupLimit && (_experts % _groups != 0 || _topkGroups < 1 || _topkGroups > _groups))
            throw new ModelFormatException($"{w.Source}: {_experts} experts cannot be split into n_group {_groups} with topk_group {_topkGroups}");
        if (_topk < 1 || _topk > _experts)
            throw new ModelFormatException($"{w.Source}: num_experts_per_tok {_topk} must be in 1..{_experts}");
        _normalize = c.NormTopkProb;
        _routeScale = (float)c.RoutedScalingFactor;
    }

    /// <summary>Chooses <see cref="TopK"/> experts for each of n tokens x[n, dim]: indices and weights [n, k].</summary>
    public void Forward(DeepSeekPass p, ReadOnlySpan<float> x, Span<int> indices, Span<float> weights, int n)
    {
        var logits = p.RouterLogits.AsSpan(0, n * _experts);          // [n, n_experts]
        MatMul.Multiply(_weight, x, logits, n);
        for (int t = 0; t < n; t++)
            Route(logits.Slice(t * _experts, _experts), p.RouterSelect, p.GroupScratch, indices.Slice(t * _topk, _topk), weights.Slice(t * _topk, _topk));
    }

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
