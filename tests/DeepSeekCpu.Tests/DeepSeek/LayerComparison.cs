using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// Layer-by-layer comparison of the engine with <see cref="NaiveDeepSeekReference"/>: the residual stream after every
/// block of one prefill pass (through <see cref="ILayerObserver"/>) against the reference's, so that a disagreement is
/// reported at the layer where it starts instead of only in the logits.
/// </summary>
internal static class LayerComparison
{
    /// <summary>Records the hidden state [rows, dim] after each block of the passes it sees (one pass expected).</summary>
    private sealed class Recorder : ILayerObserver
    {
        public readonly List<float[]> Layers = [];
        public void AfterBlock(int layer, ReadOnlySpan<float> hidden, int rows)
        {
            Assert.Equal(Layers.Count, layer);
            Layers.Add(hidden.ToArray());
        }
    }

    /// <summary>Per layer, max |engine − reference| over every position, scaled by the reference's largest |value| (at least 1).</summary>
    public static double[] Differences(DeepSeekModel m, NaiveDeepSeekReference reference, int[] tokens)
    {
        var expected = new List<double[][]>();
        reference.Forward(tokens, (l, x) => expected.Add(x.Select(r => (double[])r.Clone()).ToArray()));
        var rec = new Recorder();
        m.LayerObserver = rec;
        try
        {
            using var s = m.NewSession(tokens.Length + 1);
            s.Forward(tokens, new float[m.Config.VocabSize]);     // one pass: the prompt is shorter than a chunk
        }
        finally { m.LayerObserver = null; }
        Assert.Equal(expected.Count, rec.Layers.Count);
        int dim = m.Config.HiddenSize;
        var diffs = new double[expected.Count];
        for (int l = 0; l < expected.Count; l++)
        {
            double max = 1, d = 0;
            for (int t = 0; t < tokens.Length; t++)
                for (int i = 0; i < dim; i++)
                {
                    max = Math.Max(max, Math.Abs(expected[l][t][i]));
                    d = Math.Max(d, Math.Abs(expected[l][t][i] - rec.Layers[l][t * dim + i]));
                }
            diffs[l] = d / max;
        }
        return diffs;
    }

    /// <summary>The first layer whose relative difference exceeds <paramref name="tolerance"/>, or -1.</summary>
    public static int FirstDisagreement(double[] diffs, double tolerance) => Array.FindIndex(diffs, d => d > tolerance);

    /// <summary>Fails naming the first layer where engine and reference part, with every layer's difference.</summary>
    public static void AssertLayersAgree(DeepSeekModel m, NaiveDeepSeekReference reference, int[] tokens, double tolerance, string what)
    {
        var diffs = Differences(m, reference, tokens);
        string all = string.Join(", ", diffs.Select((d, l) => $"{l}: {d:E1}"));
        TestContext.Current.TestOutputHelper?.WriteLine($"{what} per-layer relative diff {all}");
        int first = FirstDisagreement(diffs, tolerance);
        Assert.True(first < 0, $"{what}: the engine departs from the reference at layer {first} (relative diff per layer {all})");
    }
}
