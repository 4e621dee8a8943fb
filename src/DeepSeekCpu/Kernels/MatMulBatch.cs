using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Independent products y_i[n, rows_i] = x_i[n, cols_i] · W_iᵀ over the same n tokens, run together by
/// <see cref="MatMul.Multiply(MatMulBatch)"/>. Decoding issues many small matrices per layer (a token's chosen
/// experts, q and kv projections of one input, MLA's per-head products); one batch costs one dispatch of the worker
/// pool for all of them. The caller keeps the batch (nothing is allocated once it has grown) and keeps x_i and y_i
/// pinned until the call returns.
/// </summary>
public sealed unsafe class MatMulBatch
{
    internal WeightMatrix[] W = new WeightMatrix[16];
    internal nint[] X = new nint[16], Y = new nint[16];
    internal int[] N = new int[16];

    /// <summary>Products added since <see cref="Clear"/>.</summary>
    public int Count { get; private set; }
    /// <summary>Tokens n of the products added without their own count.</summary>
    public int Tokens { get; private set; }

    /// <summary>Empties the batch for products over <paramref name="tokens"/> tokens.</summary>
    public void Clear(int tokens)
    {
        Array.Clear(W, 0, Count);
        Count = 0; Tokens = tokens;
    }

    /// <summary>Adds y[n, w.Rows] = x[n, w.Cols] · wᵀ; <paramref name="x"/> and <paramref name="y"/> must stay pinned.</summary>
    public void Add(WeightMatrix w, float* x, float* y) => Add(w, x, y, Tokens);

    /// <summary>Adds a product over its own number of tokens (a routed expert over the rows that chose it).</summary>
    public void Add(WeightMatrix w, float* x, float* y, int tokens)
    {
        if (Count == W.Length)
        {
            Array.Resize(ref W, Count * 2); Array.Resize(ref X, Count * 2); Array.Resize(ref Y, Count * 2); Array.Resize(ref N, Count * 2);
        }
        W[Count] = w; X[Count] = (nint)x; Y[Count] = (nint)y; N[Count] = tokens;
        Count++;
    }
}
