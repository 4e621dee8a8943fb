using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// SwiGLU MLP: w2(silu(w1 x) * w3 x) (model.py class MLP / Expert; HF gate_proj = w1, down_proj = w2, up_proj = w3).
/// Dense layers, each routed expert and the shared experts (one MLP of width n_shared · moe_intermediate) are MLPs.
/// </summary>
internal sealed class MLP(ModelWeights w, string p, int dim, int inter) : IFeedForward
{
    private readonly WeightMatrix _w1 = w.Matrix(p + "gate_proj.weight", inter, dim);   // [inter, dim]
    private readonly WeightMatrix _w2 = w.Matrix(p + "down_proj.weight", dim, inter);   // [dim, inter]
    private readonly WeightMatrix _w3 = w.Matrix(p + "up_proj.weight", inter, dim);     // [inter, dim]

    public int Inter => inter;

    public void Forward(DeepSeekPass p, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        var h = p.Hidden1.AsSpan(0, n * inter);   // [n, inter]
        p.Experts.Clear();
        AddHidden(p.Experts, x, [], n, h, p.Hidden2);
        ExpertGemm.Run(p.Experts);
        MatMul.Multiply(_w2, h, y, n);
    }

    /// <summary>
    /// Adds h = silu(w1 x) * w3 x ([m, inter], x the rows <paramref name="rows"/> of <paramref name="x"/>, or its
    /// first m rows) to a batch; <paramref name="u"/> ([m, inter]) is scratch.
    /// </summary>
    public void AddHidden(ExpertBatch b, ReadOnlySpan<float> x, ReadOnlySpan<int> rows, int m, Span<float> h, Span<float> u) =>
        b.Add(_w1, _w3, x, rows, m, h, u);

    /// <summary>Adds y = w2 h ([n, dim], h [n, inter]) to a batch.</summary>
    public void AddDown(ExpertBatch b, ReadOnlySpan<float> h, Span<float> y, int n) => b.Add(_w2, h, n, y);
}
