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

        // only the experts of the topk_group best groups stay selectable
        if (_groupLimit) Ops.KeepBestGroups(select, _groups, _topkGroups, _groupTop2Sum, groupScratch);
        var chosen = indices[.._topk];
        Ops.TopK(select, chosen);
        for (int k = 0; k < _topk; k++) weights[k] = scores[chosen[k]];   // the original score, without the bias
        var wk = weights[.._topk];
        if (_normalize) TensorPrimitives.Divide(wk, TensorPrimitives.Sum(wk), wk);
        TensorPrimitives.Multiply(wk, _routeScale, wk);
    }
}
