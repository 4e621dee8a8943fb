using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Independent products y_i[n, rows_i] = x_i[n, cols_i] · W_iᵀ over the same n tokens, run together by
/// <see cref="MatMul.Multiply(MatMulBatch)"/>. Decoding issues many small matrices per layer (a token's chosen
/// experts, q and kv projections of one input, MLA's per-head products); one batch costs one dispatch of the worker
/// pool for all of them. The caller keeps the batch (nothing is allocated once it has grown). The batch holds
/// addresses only: x_i and y_i must stay alive and pinned until the call returns (the models' pass buffers, allocated
/// pinned and owned by the pass, native memory, scratch); a span over a movable array does not pin it.
/// </summary>
internal sealed unsafe class MatMulBatch
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

    /// <summary>
    /// Adds y[tokens, w.Rows] = x[tokens, w.Cols] · wᵀ over memory the caller keeps alive and pinned (see the class
    /// remarks); the lengths are checked here.
    /// </summary>
    public void Add(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"{w.Name}: input has {x.Length} values, expected {tokens} x {w.Cols}");
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"{w.Name}: output has {y.Length} values, expected {tokens} x {w.Rows}");
        Add(w, (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(x)), (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(y)), tokens);
    }

    /// <summary>As <see cref="Add(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/> over <see cref="Tokens"/> tokens.</summary>
    public void Add(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y) => Add(w, x, y, Tokens);

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
