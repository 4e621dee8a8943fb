namespace DeepSeekCpu.Tests.DeepSeek;

public sealed partial class NaiveDeepSeekReference
{
    /// <summary>
    /// DeepSeek-V3's multi-token-prediction module (Technical Report §2.2, eq. 21-23) over a whole sequence, in double
    /// precision, from the equations and the checkpoint's names (README_WEIGHTS.md), for position i = 0..T-2:
    ///   h_i   = RMSNorm_model.norm(main residual stream after the last block)      the main model's last hidden state
    ///   h'_i  = eh_proj · [RMSNorm_enorm(Emb_mtp(t_{i+1})) ; RMSNorm_hnorm(h_i)]   (eq. 21, halves in the checkpoint's order)
    ///   h''_i = TRM(h'_i)                                                        (eq. 22: block model.layers.{L}, causal, position i)
    ///   P_i   = shared_head.head · RMSNorm_shared_head.norm(h''_i)               (eq. 23: logits of t_{i+2})
    /// Returns the logits [T-1][vocab].
    /// </summary>
    public double[][] MtpForward(int[] tokens)
    {
        int T = tokens.Length, D = s.Hidden, L = s.Layers;
        double[][] last = [];
        Forward(tokens, (l, x) => { if (l == L - 1) last = x.Select(r => (double[])r.Clone()).ToArray(); });
        string p = $"model.layers.{L}.";
        var emb = W(p + "embed_tokens.weight");
        var m = new double[T - 1][];
        for (int i = 0; i < T - 1; i++)
        {
            var e = Enumerable.Range(0, D).Select(j => (double)emb[tokens[i + 1] * D + j]).ToArray();
            var h = RmsNorm(last[i], W("model.norm.weight"));
            var cat = RmsNorm(e, W(p + "enorm.weight")).Concat(RmsNorm(h, W(p + "hnorm.weight"))).ToArray();
            m[i] = Linear(W(p + "eh_proj.weight"), cat, D);
        }
        var (freq, scale) = Scales();
        Block(L, m, freq, scale);
        return m.Select(r => Linear(W(p + "shared_head.head.weight"), RmsNorm(r, W(p + "shared_head.norm.weight")), s.Vocab)).ToArray();
    }
}
