namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// A deliberately plain DeepSeek forward pass written from /work/shared/DEEPSEEK.md, sharing no code with the engine:
/// double precision, plain loops, the whole sequence at once (no cache), attention with keys and values expanded per
/// head, RoPE on interleaved pairs, MoE by looping over each token's chosen experts. Weights are float arrays by HF name.
/// </summary>
public sealed partial class NaiveDeepSeekReference(TinySpec s, IReadOnlyDictionary<string, float[]> w)
{
    private float[] W(string name) => w.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException(name);

    /// <summary>y = M x for M [rows, cols] row-major.</summary>
    private static double[] Linear(float[] m, double[] x, int rows)
    {
        int cols = x.Length;
        if (m.Length != rows * cols) throw new ArgumentException($"matrix of {m.Length} values is not {rows} x {cols}");
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double acc = 0;
            for (int c = 0; c < cols; c++) acc += m[r * cols + c] * x[c];
            y[r] = acc;
        }
        return y;
    }

    private double[] RmsNorm(double[] x, float[] weight)
    {
        double ss = 0;
        foreach (var v in x) ss += v * v;
        double inv = 1 / Math.Sqrt(ss / x.Length + s.Eps);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * inv * weight[i];
        return y;
    }

    private static double Silu(double x) => x / (1 + Math.Exp(-x));

    private static void SoftmaxInPlace(double[] x)
    {
        double max = x.Max(), sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = Math.Exp(x[i] - max); sum += x[i]; }
        for (int i = 0; i < x.Length; i++) x[i] /= sum;
    }

    private double[] Mlp(string p, double[] x, int inter)
    {
        var g = Linear(W(p + "gate_proj.weight"), x, inter);
        var u = Linear(W(p + "up_proj.weight"), x, inter);
        var h = new double[inter];
        for (int i = 0; i < inter; i++) h[i] = Silu(g[i]) * u[i];
        return Linear(W(p + "down_proj.weight"), h, s.Hidden);
    }

    /// <summary>Rope frequencies per pair i (DEEPSEEK.md "YaRN" when configured) and the cos/sin scale.</summary>
    private (double[] freq, double attnFactor) RopeFrequencies()
    {
        int d = s.Rope;
        var freq = new double[d / 2];
        for (int i = 0; i < d / 2; i++) freq[i] = Math.Pow(s.RopeTheta, -2.0 * i / d);
        double attnFactor = 1;
        if (s.Yarn is { } y)
        {
            double CorrDim(double beta) => d * Math.Log(y.Orig / (beta * 2 * Math.PI)) / (2 * Math.Log(s.RopeTheta));
            double low = Math.Max(Math.Floor(CorrDim(y.BetaFast)), 0);
            double high = Math.Min(Math.Ceiling(CorrDim(y.BetaSlow)), d - 1);
            if (low == high) high += 0.001;
            for (int i = 0; i < d / 2; i++)
            {
                double r = Math.Min(1, Math.Max(0, (i - low) / (high - low)));
                freq[i] = freq[i] / y.Factor * r + freq[i] * (1 - r);
            }
            double MScale(double m) => y.Factor <= 1 ? 1 : 0.1 * m * Math.Log(y.Factor) + 1;
            attnFactor = MScale(y.MscaleAll);
        }
        return (freq, attnFactor);
    }

    private double CosSinScale()
    {
        if (s.Yarn is not { } y) return 1;
        double MScale(double m) => y.Factor <= 1 ? 1 : 0.1 * m * Math.Log(y.Factor) + 1;
        return MScale(y.Mscale) / MScale(y.MscaleAll);
    }

    /// <summary>Rotates interleaved pairs (2i, 2i+1) of v[offset .. offset+rope) by angle pos·freq_i.</summary>
    private void Rope(double[] v, int offset, int pos, double[] freq)
    {
        double k = CosSinScale();
        for (int i = 0; i < freq.Length; i++)
        {
            double c = Math.Cos(pos * freq[i]) * k, sn = Math.Sin(pos * freq[i]) * k;
            double a = v[offset + 2 * i], b = v[offset + 2 * i + 1];
            v[offset + 2 * i] = a * c - b * sn;
            v[offset + 2 * i + 1] = a * sn + b * c;
        }
    }

    private double[] Moe(string p, double[] x)
    {
        int E = s.NRouted;
        var logits = Linear(W(p + "gate.weight"), x, E);
        var scores = new double[E];
        if (s.Scoring == "sigmoid") for (int e = 0; e < E; e++) scores[e] = 1 / (1 + Math.Exp(-logits[e]));
        else { Array.Copy(logits, scores, E); SoftmaxInPlace(scores); }
        var sel = (double[])scores.Clone();
        if (w.ContainsKey(p + "gate.e_score_correction_bias"))
        {
            var b = W(p + "gate.e_score_correction_bias");
            for (int e = 0; e < E; e++) sel[e] += b[e];
        }
        if (s.NGroup > 1 && s.TopkMethod != "greedy")
        {
            int per = E / s.NGroup;
            var gs = new double[s.NGroup];
            for (int g = 0; g < s.NGroup; g++)
            {
                var grp = sel.Skip(g * per).Take(per).OrderByDescending(v => v).ToArray();
                gs[g] = s.TopkMethod == "noaux_tc" ? grp[0] + grp[1] : grp[0];
            }
            var keep = Enumerable.Range(0, s.NGroup).OrderByDescending(g => gs[g]).Take(s.TopkGroup).ToHashSet();
            for (int e = 0; e < E; e++) if (!keep.Contains(e / per)) sel[e] = double.NegativeInfinity;
        }
        var chosen = Enumerable.Range(0, E).OrderByDescending(e => sel[e]).Take(s.TopK).ToArray();
        var weight = chosen.Select(e => scores[e]).ToArray();
        if (s.NormTopk) { double sum = weight.Sum(); for (int i = 0; i < weight.Length; i++) weight[i] /= sum; }
        for (int i = 0; i < weight.Length; i++) weight[i] *= s.RoutedScale;
        var y = new double[s.Hidden];
        for (int i = 0; i < chosen.Length; i++)
        {
            var ye = Mlp($"{p}experts.{chosen[i]}.", x, s.MoeIntermediate);
            for (int j = 0; j < s.Hidden; j++) y[j] += weight[i] * ye[j];
        }
        if (s.NShared > 0)
        {
            var z = Mlp(p + "shared_experts.", x, s.NShared * s.MoeIntermediate);
            for (int j = 0; j < s.Hidden; j++) y[j] += z[j];
        }
        return y;
    }

    /// <summary>
    /// Logits [T][vocab] for every position of <paramref name="tokens"/> (positions 0..T-1);
    /// <paramref name="afterLayer"/>(layer, x [T][dim]) sees the residual stream after each block.
    /// </summary>
    public double[][] Forward(int[] tokens, Action<int, double[][]>? afterLayer = null)
    {
        int T = tokens.Length, D = s.Hidden;
        var (freq, scale) = Scales();
        var emb = W("model.embed_tokens.weight");
        var x = new double[T][];
        for (int t = 0; t < T; t++) x[t] = Enumerable.Range(0, D).Select(i => (double)emb[tokens[t] * D + i]).ToArray();

        for (int l = 0; l < s.Layers; l++)
        {
            Block(l, x, freq, scale);
            afterLayer?.Invoke(l, x);
        }
        var head = s.Tie ? emb : W("lm_head.weight");
        var logits = new double[T][];
        for (int t = 0; t < T; t++) logits[t] = Linear(head, RmsNorm(x[t], W("model.norm.weight")), s.Vocab);
        return logits;
    }

    /// <summary>Rope frequencies and the softmax scale, 1/sqrt(nope + rope) · mscale².</summary>
    private (double[] freq, double scale) Scales()
    {
        var (freq, mscale) = RopeFrequencies();
        return (freq, 1 / Math.Sqrt(s.Nope + s.Rope) * mscale * mscale);
    }

    /// <summary>Block <paramref name="l"/> (weights model.layers.l.*) over rows x[T][dim] at positions 0..T-1, in place.</summary>
    private void Block(int l, double[][] x, double[] freq, double scale)
    {
        int T = x.Length, D = s.Hidden, H = s.Heads, nope = s.Nope, rope = s.Rope, vd = s.V, kvl = s.KvLoraRank;
        {
            string p = $"model.layers.{l}.", a = p + "self_attn.";
            // ---- attention
            var q = new double[T][]; var kNope = new double[T][]; var kPe = new double[T][]; var v = new double[T][];
            var hs = new double[T][]; var qrs = new double[T][];      // the indexer's inputs (V3.2)
            for (int t = 0; t < T; t++)
            {
                var h = hs[t] = RmsNorm(x[t], W(p + "input_layernorm.weight"));
                q[t] = s.QLoraRank is int qr
                    ? Linear(W(a + "q_b_proj.weight"), qrs[t] = RmsNorm(Linear(W(a + "q_a_proj.weight"), h, qr), W(a + "q_a_layernorm.weight")), H * (nope + rope))
                    : Linear(W(a + "q_proj.weight"), h, H * (nope + rope));
                for (int hh = 0; hh < H; hh++) Rope(q[t], hh * (nope + rope) + nope, t, freq);
                var kva = Linear(W(a + "kv_a_proj_with_mqa.weight"), h, kvl + rope);
                var c = RmsNorm(kva.Take(kvl).ToArray(), W(a + "kv_a_layernorm.weight"));
                kPe[t] = kva.Skip(kvl).ToArray();
                Rope(kPe[t], 0, t, freq);
                var kvb = Linear(W(a + "kv_b_proj.weight"), c, H * (nope + vd)); // per head [k_nope (nope) ; v (vd)]
                kNope[t] = new double[H * nope]; v[t] = new double[H * vd];
                for (int hh = 0; hh < H; hh++)
                {
                    for (int d = 0; d < nope; d++) kNope[t][hh * nope + d] = kvb[hh * (nope + vd) + d];
                    for (int d = 0; d < vd; d++) v[t][hh * vd + d] = kvb[hh * (nope + vd) + nope + d];
                }
            }
            var keep = s.IndexTopk > 0 ? IndexerSelection(l, a, hs, qrs, freq) : null;   // [T][T] V3.2: keys each query sees
            for (int t = 0; t < T; t++)
            {
                var o = new double[H * vd];
                for (int hh = 0; hh < H; hh++)
                {
                    var sc = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        if (keep != null && !keep[t][j]) { sc[j] = double.NegativeInfinity; continue; }
                        double acc = 0;
                        for (int d = 0; d < nope; d++) acc += q[t][hh * (nope + rope) + d] * kNope[j][hh * nope + d];
                        for (int d = 0; d < rope; d++) acc += q[t][hh * (nope + rope) + nope + d] * kPe[j][d];
                        sc[j] = acc * scale;
                    }
                    SoftmaxInPlace(sc);
                    for (int j = 0; j <= t; j++)
                        for (int d = 0; d < vd; d++) o[hh * vd + d] += sc[j] * v[j][hh * vd + d];
                }
                var attn = Linear(W(a + "o_proj.weight"), o, D);
                for (int i = 0; i < D; i++) x[t][i] += attn[i];
            }
            // ---- feed-forward
            for (int t = 0; t < T; t++)
            {
                var h = RmsNorm(x[t], W(p + "post_attention_layernorm.weight"));
                var f = s.IsMoeLayer(l) ? Moe(p + "mlp.", h) : Mlp(p + "mlp.", h, s.Intermediate);
                for (int i = 0; i < D; i++) x[t][i] += f[i];
            }
        }
    }
}
