using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// DeepSeekMoE (model.py class MoE): y = Σ_{chosen e} weight_e · Expert_e(x) + SharedExperts(x). Each chosen expert
/// runs once over the tokens that chose it, and all of them (with the shared experts over every token) form one
/// batch of SwiGLU hidden rows (<see cref="ExpertGemm"/>: gate and up fused) and one of down products (one dispatch,
/// activations packed once for all of them); experts nobody chose are never read.
/// </summary>
internal sealed class MoE : IFeedForward
{
    private readonly Gate _gate;
    private readonly MLP[] _experts;
    private readonly MLP? _shared;
    private readonly int _dim, _inter;

    public MoE(ModelWeights w, ModelConfig c, string p)
    {
        _dim = c.HiddenSize; _inter = c.MoeIntermediateSize;
        _gate = new Gate(w, c, p + "gate.");
        _experts = new MLP[c.NRoutedExperts];
        for (int e = 0; e < _experts.Length; e++) _experts[e] = new MLP(w, $"{p}experts.{e}.", _dim, _inter);
        if (c.NSharedExperts > 0) _shared = new MLP(w, p + "shared_experts.", _dim, c.NSharedExperts * _inter);
    }

    public void Forward(DeepSeekPass p, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        int k = _gate.TopK, routed = n * k, D = _dim, E = _experts.Length;
        var chosen = p.Chosen.AsSpan(0, routed);                     // [n, k] expert ids
        var weights = p.ChosenWeights.AsSpan(0, routed);             // [n, k]
        _gate.Forward(p, x, chosen, weights, n);

        // (token, slot) pairs i = t*k + slot grouped by expert (counting sort): expert e has order[first[e]..first[e+1])
        var first = p.ExpertFirst.AsSpan(0, E + 1);
        var order = p.Order.AsSpan(0, routed);
        first.Clear();
        foreach (int e in chosen) first[e + 1]++;
        for (int e = 0; e < E; e++) first[e + 1] += first[e];
        var fill = p.ExpertFill.AsSpan(0, E);
        first[..E].CopyTo(fill);
        for (int i = 0; i < routed; i++) order[fill[chosen[i]]++] = i;

        // Hidden rows h = silu(w1 x) * w3 x: routed [n*k, inter] in expert order, then shared [n, shared inter];
        // outputs [n*k + n, dim] alike. The tokens of pair i are x's rows tokens[i].
        var g = p.Hidden1.AsSpan(); var u = p.Hidden2.AsSpan(); var outs = p.ExpertOut.AsSpan();
        var tokens = p.ExpertTokens.AsSpan(0, routed);
        for (int i = 0; i < routed; i++) tokens[i] = order[i] / k;
        var batch = p.Experts;
        batch.Clear();
        for (int e = 0; e < E; e++)
        {
            int i0 = first[e], m = first[e + 1] - i0;
            if (m > 0) _experts[e].AddHidden(batch, x, tokens.Slice(i0, m), m, g[(i0 * _inter)..], u[(i0 * _inter)..]);
        }
        _shared?.AddHidden(batch, x, [], n, g[(routed * _inter)..], u[(routed * _inter)..]);
        ExpertGemm.Run(batch);
        batch.Clear();
        for (int e = 0; e < E; e++)
        {
            int i0 = first[e], m = first[e + 1] - i0;
            if (m > 0) _experts[e].AddDown(batch, g[(i0 * _inter)..], outs[(i0 * D)..], m);
        }
        _shared?.AddDown(batch, g[(routed * _inter)..], outs[(routed * D)..], n);
        ExpertGemm.Run(batch);

        y = y[..(n * D)];
        y.Clear();
        for (int i = 0; i < routed; i++)                             // Σ weight · expert(x), in expert order
        {
            var dst = y.Slice(order[i] / k * D, D);
            TensorPrimitives.MultiplyAdd(outs.Slice(i * D, D), weights[order[i]], dst, dst);
        }
        if (_shared != null) TensorPrimitives.Add(y, outs.Slice(routed * D, n * D), y);
    }
}
