namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// The V3.2 lightning indexer of the plain reference, written from /work/shared/DEEPSEEK.md and the V3.2 paper's
/// definition, sharing no code with the engine: double precision, the Hadamard rotation as an explicit product with
/// the Sylvester matrix, RoPE on halves of the first rope dims, top-k by sorting.
/// </summary>
public sealed partial class NaiveDeepSeekReference
{
    /// <summary>The smallest gap, relative to the row's largest |score|, between the last kept and the first dropped score (over all sparse choices).</summary>
    public double MinIndexCutMargin { get; private set; } = double.PositiveInfinity;

    /// <summary>Selected positions of layer <paramref name="layer"/> per query position: keep[t][j] for j ≤ t.</summary>
    public Dictionary<(int Layer, int Position), int[]> Selections { get; } = [];

    private bool[][] IndexerSelection(int layer, string a, double[][] hs, double[][] qrs, double[] freq)
    {
        int T = hs.Length, IH = s.IndexHeads, ID = s.IndexHeadDim, rope = s.Rope;
        string p = a + "indexer.";
        // keys: k = H(rope(LayerNorm(wk h))) per token
        var k = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var kt = LayerNorm(Linear(W(p + "wk.weight"), hs[t], ID), W(p + "k_norm.weight"), W(p + "k_norm.bias"));
            RopeHalves(kt, 0, t, freq);
            k[t] = Rotate(kt);
        }
        var keep = new bool[T][];
        for (int t = 0; t < T; t++)
        {
            keep[t] = new bool[T];
            var q = Linear(W(p + "wq_b.weight"), qrs[t], IH * ID);           // [IH, ID]
            var wts = Linear(W(p + "weights_proj.weight"), hs[t], IH);
            var score = new double[t + 1];
            for (int h = 0; h < IH; h++)
            {
                var qh = q.Skip(h * ID).Take(ID).ToArray();
                RopeHalves(qh, 0, t, freq);
                qh = Rotate(qh);
                double wh = wts[h] / Math.Sqrt(IH) / Math.Sqrt(ID);
                for (int j = 0; j <= t; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < ID; d++) dot += qh[d] * k[j][d];
                    score[j] += wh * Math.Max(dot, 0);
                }
            }
            var order = Enumerable.Range(0, t + 1).OrderByDescending(j => score[j]).ToArray();
            int kept = Math.Min(s.IndexTopk, t + 1);
            foreach (int j in order.Take(kept)) keep[t][j] = true;
            // a cut between two exact zeros (every head's ReLU zero for both keys) is no near-tie: both sides compute
            // exact zeros and keep the lower position (the engine's documented rule, and OrderByDescending's stability)
            if (kept < t + 1 && !(score[order[kept - 1]] == 0 && score[order[kept]] == 0))
            {
                double scale = score.Max(Math.Abs);
                MinIndexCutMargin = Math.Min(MinIndexCutMargin, (score[order[kept - 1]] - score[order[kept]]) / scale);
            }
            Selections[(layer, t)] = Enumerable.Range(0, t + 1).Where(j => keep[t][j]).ToArray();
        }
        return keep;
    }

    private double[] LayerNorm(double[] x, float[] weight, float[] bias)
    {
        double mean = x.Average(), var = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select((v, i) => (v - mean) / Math.Sqrt(var + 1e-6) * weight[i] + bias[i]).ToArray();
    }

    /// <summary>Rotates pairs (i, i + rope/2) of v[offset .. offset+rope) by angle pos·freq_i (NOT interleaved).</summary>
    private void RopeHalves(double[] v, int offset, int pos, double[] freq)
    {
        double k = CosSinScale();
        int half = freq.Length;
        for (int i = 0; i < half; i++)
        {
            double c = Math.Cos(pos * freq[i]) * k, sn = Math.Sin(pos * freq[i]) * k;
            double x0 = v[offset + i], x1 = v[offset + i + half];
            v[offset + i] = x0 * c - x1 * sn;
            v[offset + i + half] = x0 * sn + x1 * c;
        }
    }

    /// <summary>x · H_d / √d with H_d[i, j] = (−1)^popcount(i AND j), the Sylvester Hadamard matrix.</summary>
    private static double[] Rotate(double[] x)
    {
        int d = x.Length;
        var y = new double[d];
        for (int j = 0; j < d; j++)
        {
            for (int i = 0; i < d; i++) y[j] += System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? x[i] : -x[i];
            y[j] /= Math.Sqrt(d);
        }
        return y;
    }
}
