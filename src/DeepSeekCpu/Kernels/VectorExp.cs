using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// e^x for float32 vectors, as attention's softmax needs it (its arguments are scores minus their maximum, ≤ 0):
/// relative error within a few units in the last place over [−87, 88.3], exactly 0 below −87 (so −∞, a masked score,
/// gives a weight of 0), +∞ above 88.3 (2^n must stay a normal float: n = round(x·log2 e) ≤ 127; float32 itself
/// overflows only at 88.72). .NET's Vector512.Exp
/// (what TensorPrimitives.Exp runs) widens to float64 and took a sixth of a long prompt's attention tile here; this
/// is float32 throughout: e^x = 2^n · e^r with n = round(x·log2 e), r = x − n·ln 2 in two steps (Cody and Waite's split of
/// ln 2), and e^r by the degree-7 polynomial of Cephes' expf (coefficients from Moshier's Cephes library, expf.c).
/// </summary>
internal static class VectorExp
{
    private const float Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float Low = -87f, High = 88.3f;
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
        P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /// <summary>The scalar specification the vector bodies follow step by step.</summary>
    public static float Exp(float x)
    {
        if (x < Low) return 0f;
        if (x > High) return float.PositiveInfinity;
        float n = MathF.Round(x * Log2E);
        float r = MathF.FusedMultiplyAdd(n, -Ln2Lo, MathF.FusedMultiplyAdd(n, -Ln2Hi, x));
        float p = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(
            P0, r, P1), r, P2), r, P3), r, P4), r, P5);
        float e = MathF.FusedMultiplyAdd(p, r * r, r) + 1f;
        return e * BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(Low)), Vector512.Create(High));
        var n = Vector512.Round(xc * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), xc));
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        var e = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var scaled = e * Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        scaled = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(High)), Vector512.Create(float.PositiveInfinity), scaled);
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(Low)), Vector512<float>.Zero, scaled);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.Min(Vector256.Max(x, Vector256.Create(Low)), Vector256.Create(High));
        var n = Vector256.Round(xc * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), xc));
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        var e = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        var scaled = e * Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        scaled = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(High)), Vector256.Create(float.PositiveInfinity), scaled);
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Low)), Vector256<float>.Zero, scaled);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Exp(Vector128<float> x)
    {
        var xc = Vector128.Min(Vector128.Max(x, Vector128.Create(Low)), Vector128.Create(High));
        var n = Vector128.Round(xc * Vector128.Create(Log2E));
        var r = Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2Lo), Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2Hi), xc));
        var p = Vector128.FusedMultiplyAdd(Vector128.Create(P0), r, Vector128.Create(P1));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P2));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P3));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P4));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P5));
        var e = Vector128.FusedMultiplyAdd(p, r * r, r) + Vector128<float>.One;
        var scaled = e * Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(127), 23).AsSingle();
        scaled = Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128.Create(High)), Vector128.Create(float.PositiveInfinity), scaled);
        return Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128.Create(Low)), Vector128<float>.Zero, scaled);
    }
}
