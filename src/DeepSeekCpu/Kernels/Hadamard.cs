using System.Numerics.Tensors;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The normalised Walsh-Hadamard rotation DeepSeek-V3.2's indexer applies to its queries and keys
/// (inference/model.py rotate_activation: fast_hadamard_transform's <c>hadamard_transform(x, scale=d^-0.5)</c>).
/// Orthogonal, so it leaves q·k unchanged in exact arithmetic; DeepSeek rotates before quantising q and k to FP8, where
/// spreading outliers over all dimensions keeps the rounding small.
/// </summary>
internal static class Hadamard
{
    /// <summary>
    /// x ← x · H_d / √d in place, with H_d the Sylvester Hadamard matrix (H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]])
    /// and d = x.Length a power of two: log2(d) rounds of butterflies (a, b) → (a + b, a − b) at strides 1, 2, 4, …
    /// </summary>
    public static void Rotate(Span<float> x)
    {
        int d = x.Length;
        if (d == 0 || (d & (d - 1)) != 0) throw new ArgumentException($"Hadamard rotation of {d} values: the length must be a power of two", nameof(x));
        for (int h = 1; h < d; h *= 2)
            for (int i = 0; i < d; i += 2 * h)
                for (int j = i; j < i + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
        TensorPrimitives.Multiply(x, 1f / MathF.Sqrt(d), x);
    }
}
