using System.Runtime.Intrinsics;
using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The softmax's float32 e^x (<see cref="VectorExp"/>) against float64 <see cref="Math.Exp(double)"/>: relative error over
/// the range attention uses (scores minus their running maximum: −87..0, and a little above), and its edges: −∞ and
/// anything below −87 give exactly 0, 0 gives 1, above 88.3 +∞. Every vector width and the scalar specification.
/// </summary>
public class VectorExpTests
{
    private static float[] Inputs()
    {
        var xs = new List<float> { 0f, -0f, 1f, -1f, 0.5f, -0.5f, 88f, 88.29f, 88.3f, 88.31f, -86.99f, -87f, -87.01f, -100f, 88.71f, 1000f,
            float.NegativeInfinity, float.PositiveInfinity, -1e-8f, 1e-8f, 0.34657359f, -0.34657359f, 0.6931472f };
        var rng = new Random(5);
        for (int i = 0; i < 20000; i++) xs.Add((float)(rng.NextDouble() * 95 - 90));   // −90 .. 5
        while (xs.Count % 16 != 0) xs.Add(-3f);
        return [.. xs];
    }

    private static void Check(float x, float got, string width)
    {
        if (float.IsNegativeInfinity(x) || x < -87f) { Assert.True(got == 0f, $"{width}: exp({x}) = {got}, expected 0"); return; }
        if (x > 88.3f) { Assert.True(float.IsPositiveInfinity(got), $"{width}: exp({x}) = {got}, expected +inf"); return; }
        double want = Math.Exp(x), rel = Math.Abs(got - want) / want;
        Assert.True(rel < 4e-7, $"{width}: exp({x}) = {got}, float64 {want}, relative error {rel:E2}");
    }

    [Fact]
    public void Vector_exp_is_within_a_few_ulps_of_float64_and_zero_below_minus_87()
    {
        var xs = Inputs();
        foreach (var x in xs) Check(x, VectorExp.Exp(x), "scalar");
        for (int i = 0; i < xs.Length; i += 16)
        {
            var v512 = VectorExp.Exp(Vector512.Create(xs.AsSpan(i, 16)));
            var v256 = VectorExp.Exp(Vector256.Create(xs.AsSpan(i, 8)));
            var v128 = VectorExp.Exp(Vector128.Create(xs.AsSpan(i, 4)));
            for (int l = 0; l < 16; l++) Check(xs[i + l], v512[l], "512");
            for (int l = 0; l < 8; l++) Check(xs[i + l], v256[l], "256");
            for (int l = 0; l < 4; l++) Check(xs[i + l], v128[l], "128");
            Assert.Equal(VectorExp.Exp(xs[i]), v512[0]);   // the vector bodies are the scalar specification lane by lane
        }
        Assert.Equal(1f, VectorExp.Exp(0f));
    }
}
