namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// DeepSeek-V4 in float64 over a whole sequence at once, written from /work/shared/DEEPSEEK.md (V4 row), the fixture
/// README's description of DeepSeek's code (mHC Sinkhorn, sinks in the softmax, overlapping compression, indexer) and
/// the V4 paper's definitions, sharing no code with the engine. Where the engine keeps running states (window ring,
/// compressor state) and decodes token by token, this computes every compressed entry from its block of tokens and
/// masks causally, as the official prefill path does: entry i of ratio r summarises tokens r·i .. r·i + r − 1 (and,
/// for r = 4, the previous block through the first half of the projections) and becomes visible to the token that
/// completes it; the Hadamard rotation is an explicit product with the Sylvester matrix; top-k by sorting.
/// </summary>
public sealed class NaiveV4Reference(TinyDeepSeekV4 m)
{
    private double[] W(string name) => m.Values[name];

    /// <summary>Selected compressed entries per (CSA layer, position), ascending.</summary>
    public Dictionary<(int Layer, int Position), int[]> Selections { get; } = [];

    /// <summary>The smallest gap between the last kept and the first dropped index score, relative to the row's largest |score|.</summary>
    public double MinIndexCutMargin { get; private set; } = double.PositiveInfinity;

    /// <summary>Logits [T][vocab] of every position.</summary>
    public double[][] Forward(int[] tokens)
    {
        int T = tokens.Length, D = m.Dim, hc = m.Hc;
        // h[t]: hc streams of the embedding
        var h = tokens.Select(tok => Enumerable.Range(0, hc * D).Select(i => W("embed.weight")[tok * D + i % D]).ToArray()).ToArray();
        for (int l = 0; l < m.Ratios.Length; l++)
        {
            string p = $"layers.{l}.";
            var mixes = h.Select(ht => HcMixes(ht, p + "hc_attn_")).ToArray();
            var x = h.Select((ht, t) => RmsNorm(Collapse(ht, mixes[t].Pre), W(p + "attn_norm.weight"))).ToArray();
            var y = Attention(l, x);
            for (int t = 0; t < T; t++) h[t] = Expand(h[t], y[t], mixes[t].Post, mixes[t].Comb);

            mixes = h.Select(ht => HcMixes(ht, p + "hc_ffn_")).ToArray();
            x = h.Select((ht, t) => RmsNorm(Collapse(ht, mixes[t].Pre), W(p + "ffn_norm.weight"))).ToArray();
            for (int t = 0; t < T; t++) h[t] = Expand(h[t], MoE(l, x[t], tokens[t]), mixes[t].Post, mixes[t].Comb);
        }
        return h.Select(ht =>
        {
            // hc_head: pre = sigmoid(mixes · scale + base) + eps, y = Σ pre_i h_i, then norm and head
            var mix = Linear(W("hc_head_fn"), ht, hc);
            double rs = 1 / Math.Sqrt(ht.Sum(v => v * v) / ht.Length + m.Eps);
            var pre = Enumerable.Range(0, hc).Select(i => Sigmoid(mix[i] * rs * W("hc_head_scale")[0] + W("hc_head_base")[i]) + m.HcEps).ToArray();
            return Linear(W("head.weight"), RmsNorm(Collapse(ht, pre), W("norm.weight")), m.Vocab);
        }).ToArray();
    }

    private sealed record Mix(double[] Pre, double[] Post, double[,] Comb);

    /// <summary>mHC: mixes = fn · h / rms(h); pre, post, and comb made doubly stochastic by Sinkhorn-Knopp.</summary>
    private Mix HcMixes(double[] ht, string p)
    {
        int hc = m.Hc;
        double rs = 1 / Math.Sqrt(ht.Sum(v => v * v) / ht.Length + m.Eps);
        var mix = Linear(W(p + "fn"), ht, (2 + hc) * hc).Select(v => v * rs).ToArray();
        var scale = W(p + "scale"); var b = W(p + "base");
        var pre = Enumerable.Range(0, hc).Select(i => Sigmoid(mix[i] * scale[0] + b[i]) + m.HcEps).ToArray();
        var post = Enumerable.Range(0, hc).Select(i => 2 * Sigmoid(mix[hc + i] * scale[1] + b[hc + i])).ToArray();
        var comb = new double[hc, hc];
        for (int i = 0; i < hc; i++)
        {
            var row = Enumerable.Range(0, hc).Select(j => mix[2 * hc + i * hc + j] * scale[2] + b[2 * hc + i * hc + j]).ToArray();
            var sm = Softmax(row);
            for (int j = 0; j < hc; j++) comb[i, j] = sm[j] + m.HcEps;
        }
        for (int it = 0; it < m.SinkhornIters; it++)
        {
            if (it > 0)
                for (int i = 0; i < hc; i++)
                {
                    double s = m.HcEps; for (int j = 0; j < hc; j++) s += comb[i, j];
                    for (int j = 0; j < hc; j++) comb[i, j] /= s;
                }
            for (int j = 0; j < hc; j++)
            {
                double s = m.HcEps; for (int i = 0; i < hc; i++) s += comb[i, j];
                for (int i = 0; i < hc; i++) comb[i, j] /= s;
            }
        }
        return new Mix(pre, post, comb);
    }

    private double[] Collapse(double[] ht, double[] pre)
    {
        int D = m.Dim;
        var y = new double[D];
        for (int i = 0; i < pre.Length; i++) for (int d = 0; d < D; d++) y[d] += pre[i] * ht[i * D + d];
        return y;
    }

    private double[] Expand(double[] ht, double[] y, double[] post, double[,] comb)
    {
        int D = m.Dim, hc = post.Length;
        var r = new double[hc * D];
        for (int j = 0; j < hc; j++)
            for (int d = 0; d < D; d++)
            {
                double v = post[j] * y[d];
                for (int i = 0; i < hc; i++) v += comb[i, j] * ht[i * D + d];
                r[j * D + d] = v;
            }
        return r;
    }

    private double[][] Attention(int l, double[][] x)
    {
        int T = x.Length, H = m.Heads, hd = m.HeadDim, r = m.Ratios[l];
        string a = $"layers.{l}.attn.";
        // compressed layers: compress_rope_theta with YaRN's frequencies; window-only: rope_theta
        var freq = r > 0 ? Frequencies(m.CompressTheta, true) : Frequencies(m.RopeTheta, false);
        var qr = x.Select(xt => RmsNorm(Linear(W(a + "wq_a.weight"), xt, m.QLora), W(a + "q_norm.weight"))).ToArray();
        var q = new double[T][][];
        var kv = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var all = Linear(W(a + "wq_b.weight"), qr[t], H * hd);
            q[t] = Enumerable.Range(0, H).Select(hh =>
            {
                var qh = all.Skip(hh * hd).Take(hd).ToArray();
                double rs = 1 / Math.Sqrt(qh.Sum(v => v * v) / hd + m.Eps);
                return Rope(qh.Select(v => v * rs).ToArray(), t, freq, false);
            }).ToArray();
            kv[t] = Rope(RmsNorm(Linear(W(a + "wkv.weight"), x[t], hd), W(a + "kv_norm.weight")), t, freq, false);
        }
        var entries = r > 0 ? Compress(a + "compressor.", x, r, hd, freq, rotate: false) : [];
        List<int>[] chosen = new List<int>[T];
        for (int t = 0; t < T; t++) chosen[t] = Enumerable.Range(0, Math.Min(entries.Length, (t + 1) / Math.Max(r, 1))).ToList();
        if (r == 4) chosen = IndexerSelection(l, a + "indexer.", x, qr, freq);

        var y = new double[T][];
        for (int t = 0; t < T; t++)
        {
            var keys = Enumerable.Range(Math.Max(0, t - m.Window + 1), Math.Min(t + 1, m.Window)).Select(j => kv[j])
                .Concat(chosen[t].Select(j => entries[j])).ToArray();
            var o = new double[H * hd];
            for (int hh = 0; hh < H; hh++)
            {
                var s = keys.Select(k => Dot(q[t][hh], k) / Math.Sqrt(hd)).ToArray();
                double mx = s.Max(), sink = W(a + "attn_sink")[hh];
                double den = s.Sum(v => Math.Exp(v - mx)) + Math.Exp(sink - mx);
                var oh = new double[hd];
                for (int j = 0; j < keys.Length; j++) for (int d = 0; d < hd; d++) oh[d] += Math.Exp(s[j] - mx) / den * keys[j][d];
                Rope(oh, t, freq, inverse: true).CopyTo(o, hh * hd);
            }
            // grouped low-rank output: group g of o through rows g·o_lora.. of wo_a, then wo_b
            int gin = H * hd / m.OGroups;
            var low = new double[m.OGroups * m.OLora];
            for (int g = 0; g < m.OGroups; g++)
                for (int rr = 0; rr < m.OLora; rr++)
                {
                    double v = 0;
                    for (int c = 0; c < gin; c++) v += W(a + "wo_a.weight")[(g * m.OLora + rr) * gin + c] * o[g * gin + c];
                    low[g * m.OLora + rr] = v;
                }
            y[t] = Linear(W(a + "wo_b.weight"), low, m.Dim);
        }
        return y;
    }

    /// <summary>The compressed entries of every complete block of ratio r.</summary>
    private double[][] Compress(string p, double[][] x, int r, int d, double[] freq, bool rotate)
    {
        int T = x.Length, width = (r == 4 ? 2 : 1) * d;
        var kvp = x.Select(xt => Linear(W(p + "wkv.weight"), xt, width)).ToArray();
        var sc = x.Select((xt, t) => Linear(W(p + "wgate.weight"), xt, width).Select((v, c) => v + W(p + "ape")[t % r * width + c]).ToArray()).ToArray();
        var entries = new double[T / r][];
        for (int i = 0; i < T / r; i++)
        {
            // rows of the softmax: (token, channel offset); overlapping: the previous block's first halves, this block's second halves
            var rows = new List<(int Token, int Offset)>();
            if (r == 4 && i > 0) for (int u = r * (i - 1); u < r * i; u++) rows.Add((u, 0));
            for (int u = r * i; u < r * i + r; u++) rows.Add((u, r == 4 ? d : 0));
            var e = new double[d];
            for (int c = 0; c < d; c++)
            {
                double mx = rows.Max(z => sc[z.Token][z.Offset + c]);
                double den = rows.Sum(z => Math.Exp(sc[z.Token][z.Offset + c] - mx));
                e[c] = rows.Sum(z => Math.Exp(sc[z.Token][z.Offset + c] - mx) / den * kvp[z.Token][z.Offset + c]);
            }
            e = Rope(RmsNorm(e, W(p + "norm.weight")), r * i, freq, false);
            entries[i] = rotate ? Hadamard(e) : e;
        }
        return entries;
    }

    private List<int>[] IndexerSelection(int l, string p, double[][] x, double[][] qr, double[] freq)
    {
        int T = x.Length, IH = m.IndexHeads, ID = m.IndexHeadDim;
        var keys = Compress(p + "compressor.", x, 4, ID, freq, rotate: true);
        var chosen = new List<int>[T];
        for (int t = 0; t < T; t++)
        {
            int n = (t + 1) / 4;
            var q = Linear(W(p + "wq_b.weight"), qr[t], IH * ID);
            var w = Linear(W(p + "weights_proj.weight"), x[t], IH);
            var score = new double[n];
            for (int hh = 0; hh < IH; hh++)
            {
                var qh = Hadamard(Rope(q.Skip(hh * ID).Take(ID).ToArray(), t, freq, false));
                for (int j = 0; j < n; j++) score[j] += w[hh] / Math.Sqrt(ID) / Math.Sqrt(IH) * Math.Max(Dot(qh, keys[j]), 0);
            }
            var order = Enumerable.Range(0, n).OrderByDescending(j => score[j]).ToArray();
            int kept = Math.Min(m.IndexTopk, n);
            // a cut between two exact zeros (every head's ReLU zero for both) is no near tie: both sides keep the lower entry
            if (kept < n && !(score[order[kept - 1]] == 0 && score[order[kept]] == 0)) MinIndexCutMargin = Math.Min(MinIndexCutMargin, (score[order[kept - 1]] - score[order[kept]]) / score.Max(Math.Abs));
            chosen[t] = order.Take(kept).Order().ToList();
            Selections[(l, t)] = [.. chosen[t]];
        }
        return chosen;
    }

    private double[] MoE(int l, double[] x, int token)
    {
        string f = $"layers.{l}.ffn.";
        int E = m.Experts, k = m.TopK;
        var z = Linear(W(f + "gate.weight"), x, E);
        var scores = z.Select(v => m.ScoringFunc == "sigmoid" ? Sigmoid(v) : Math.Sqrt(Math.Log(1 + Math.Exp(v)))).ToArray();
        int[] ids = l < m.HashLayers
            ? m.Tables[f + "gate.tid2eid"].Skip(token * k).Take(k).ToArray()
            : Enumerable.Range(0, E).OrderByDescending(e => scores[e] + W(f + "gate.bias")[e]).Take(k).ToArray();
        double sum = ids.Sum(e => scores[e]);
        var y = Expert(f + "shared_experts.", x, 1);
        foreach (int e in ids)
        {
            var ye = Expert($"{f}experts.{e}.", x, scores[e] / sum * m.RouteScale);
            for (int d = 0; d < y.Length; d++) y[d] += ye[d];
        }
        return y;
    }

    /// <summary>w2(weight · silu(min(w1 x, limit)) · clamp(w3 x, ±limit)).</summary>
    private double[] Expert(string p, double[] x, double weight)
    {
        double L = m.SwigluLimit;
        var g = Linear(W(p + "w1.weight"), x, m.MoeInter);
        var u = Linear(W(p + "w3.weight"), x, m.MoeInter);
        var hdn = g.Select((gv, i) => { gv = Math.Min(gv, L); return weight * gv / (1 + Math.Exp(-gv)) * Math.Clamp(u[i], -L, L); }).ToArray();
        return Linear(W(p + "w2.weight"), hdn, m.Dim);
    }

    /// <summary>θ^(−2i/d) per pair; with YaRN, pairs past the correction range are divided by the factor, blended linearly inside it.</summary>
    private double[] Frequencies(double theta, bool yarn)
    {
        int d = m.Rope;
        var f = Enumerable.Range(0, d / 2).Select(i => Math.Pow(theta, -2.0 * i / d)).ToArray();
        if (!yarn) return f;
        double Dim(double rot) => d * Math.Log(m.YarnOriginal / (rot * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(Dim(32)), 0), high = Math.Min(Math.Ceiling(Dim(1)), d - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < f.Length; i++)
        {
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            f[i] = f[i] / m.YarnFactor * ramp + f[i] * (1 - ramp);
        }
        return f;
    }

    /// <summary>RoPE on the last rope dims, interleaved pairs; the inverse rotates by −angle.</summary>
    private double[] Rope(double[] v, int pos, double[] freq, bool inverse)
    {
        int off = v.Length - 2 * freq.Length;
        for (int i = 0; i < freq.Length; i++)
        {
            double ang = (inverse ? -1 : 1) * pos * freq[i], c = Math.Cos(ang), s = Math.Sin(ang);
            double a = v[off + 2 * i], b = v[off + 2 * i + 1];
            v[off + 2 * i] = a * c - b * s;
            v[off + 2 * i + 1] = a * s + b * c;
        }
        return v;
    }

    /// <summary>x · H / √d with H the Sylvester Hadamard matrix, H[i, j] = (−1)^popcount(i AND j).</summary>
    private static double[] Hadamard(double[] x)
    {
        int d = x.Length;
        var y = new double[d];
        for (int j = 0; j < d; j++)
            for (int i = 0; i < d; i++) y[j] += (System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1 : -1) * x[i];
        return y.Select(v => v / Math.Sqrt(d)).ToArray();
    }

    private double[] RmsNorm(double[] x, double[] w)
    {
        double rs = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + m.Eps);
        return x.Select((v, i) => v * rs * w[i]).ToArray();
    }

    private static double[] Linear(double[] w, double[] x, int rows)
    {
        int cols = x.Length;
        var y = new double[rows];
        for (int r = 0; r < rows; r++) { double s = 0; for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[c]; y[r] = s; }
        return y;
    }

    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
    private static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));
    private static double[] Softmax(double[] v) { double mx = v.Max(); var e = v.Select(x => Math.Exp(x - mx)).ToArray(); double s = e.Sum(); return e.Select(x => x / s).ToArray(); }
}
