using System.Numerics.Tensors;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>Element-wise and per-row operations of the model graph, on TensorPrimitives (SIMD on every ISA).</summary>
internal static class Ops
{
    /// <summary>RMSNorm: y = x / sqrt(mean(x²) + eps) * weight (Zhang and Sennrich 2019).</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, float eps)
    {
        float ss = TensorPrimitives.Dot(x, x);
        float inv = 1f / MathF.Sqrt(ss / x.Length + eps);
        TensorPrimitives.Multiply(x, inv, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>RMSNorm over each of the <paramref name="n"/> rows of length <paramref name="dim"/>.</summary>
    public static void RmsNormRows(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int n, int dim, float eps)
    {
        for (int t = 0; t < n; t++) RmsNorm(x.Slice(t * dim, dim), weight, y.Slice(t * dim, dim), eps);
    }

    /// <summary>In-place softmax.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.Length == 0) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    /// <summary>
    /// Causal attention of <paramref name="heads"/> query heads that share one key/value stream (a GQA group, or all
    /// MLA heads over the latent cache): for each head g, p_g = softmax(scale · q_g · k_j) over j &lt; len and
    /// o_g = Σ_j p_g[j] v_j. Each key and value row is used by every head while it sits in L1, so the cache is read
    /// once per group instead of once per head (what makes long contexts bandwidth-bound on the cache otherwise).
    /// Query g is q[g*qStride ..][..dk], key j keys[j*kStride ..][..dk], value j values[j*vStride ..][..dv], output g
    /// o[g*oStride ..][..dv]; <paramref name="scores"/> is scratch of heads * len.
    /// </summary>
    public static void Attention(ReadOnlySpan<float> q, int qStride, int heads, int dk,
        ReadOnlySpan<float> keys, int kStride, ReadOnlySpan<float> values, int vStride, int dv, int len, float scale,
        Span<float> scores, Span<float> o, int oStride)
    {
        for (int j = 0; j < len; j++)
        {
            var k = keys.Slice(j * kStride, dk);
            for (int g = 0; g < heads; g++) scores[g * len + j] = TensorPrimitives.Dot(q.Slice(g * qStride, dk), k) * scale;
        }
        for (int g = 0; g < heads; g++)
        {
            Softmax(scores.Slice(g * len, len));
            o.Slice(g * oStride, dv).Clear();
        }
        for (int j = 0; j < len; j++)
        {
            var v = values.Slice(j * vStride, dv);
            for (int g = 0; g < heads; g++)
            {
                var og = o.Slice(g * oStride, dv);
                TensorPrimitives.MultiplyAdd(v, scores[g * len + j], og, og);
            }
        }
    }

    /// <summary>x[t] = row tokens[t] of the embedding table as float32 (a lookup: <paramref name="x"/> is [n, dim]).</summary>
    public static void EmbedRows(WeightMatrix embed, ReadOnlySpan<int> tokens, Span<float> x)
    {
        int dim = embed.Cols;
        for (int t = 0; t < tokens.Length; t++) Dequantize.RowOf(embed, tokens[t], x.Slice(t * dim, dim));
    }

    /// <summary>
    /// The graph's last step: logits[m, vocab] = head · RMSNorm(x[m, dim]) for the m rows in <paramref name="x"/>
    /// (none: nothing to do); <paramref name="scratch"/> holds the normed rows.
    /// </summary>
    public static void NormThenHead(ReadOnlySpan<float> x, float[] norm, float eps, WeightMatrix head, Span<float> scratch, Span<float> logits)
    {
        int dim = head.Cols, m = x.Length / dim;
        if (m == 0) return;
        var h = scratch[..(m * dim)];                                // [m, dim]
        RmsNormRows(x, norm, h, m, dim, eps);
        MatMul.Multiply(head, h, logits[..(m * head.Rows)], m);
    }

    /// <summary>
    /// Group-limited routing (DeepSeek's Gate): <paramref name="scores"/> ([groups · per]) is viewed as
    /// <paramref name="groups"/> groups; each group scores its max, or with <paramref name="top2Sum"/> the sum of its
    /// two largest (model.py: scores.topk(2, dim=-1)[0].sum(dim=-1)); every score outside the <paramref name="keep"/>
    /// best groups becomes −∞ (model.py's masked_fill; HF's V3 code uses 0.0). <paramref name="scratch"/>: [2·groups].
    /// </summary>
    public static void KeepBestGroups(Span<float> scores, int groups, int keep, bool top2Sum, Span<float> scratch)
    {
        int per = scores.Length / groups;
        var groupScores = scratch[..groups];                 // [groups]
        var kept = scratch.Slice(groups, groups);            // [groups] 1 = kept
        for (int g = 0; g < groups; g++)
        {
            var grp = scores.Slice(g * per, per);
            if (top2Sum && per >= 2)
            {
                float a = float.NegativeInfinity, b = float.NegativeInfinity;
                foreach (float v in grp) { if (v > a) { b = a; a = v; } else if (v > b) b = v; }
                groupScores[g] = a + b;
            }
            else groupScores[g] = TensorPrimitives.Max(grp);
        }
        kept.Clear();
        for (int k = 0; k < keep; k++)
        {
            int best = -1;
            for (int g = 0; g < groups; g++)
                if (kept[g] == 0 && (best < 0 || groupScores[g] > groupScores[best])) best = g;
            kept[best] = 1;
        }
        for (int g = 0; g < groups; g++)
            if (kept[g] == 0) scores.Slice(g * per, per).Fill(float.NegativeInfinity);
    }

    /// <summary>
    /// Indices of the <paramref name="indices"/>.Length largest values, largest first (torch.topk; k is small:
    /// repeated arg-max, the first of equal values wins). Chosen values are overwritten with NaN.
    /// </summary>
    public static void TopK(Span<float> values, Span<int> indices)
    {
        for (int k = 0; k < indices.Length; k++)
        {
            int best = -1;
            for (int e = 0; e < values.Length; e++)
                if (!float.IsNaN(values[e]) && (best < 0 || values[e] > values[best])) best = e;
            indices[k] = best;
            values[best] = float.NaN;                        // chosen: never again
        }
    }

    /// <summary>SwiGLU gate: gate = silu(gate) * up, in place on <paramref name="gate"/>.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        // silu(g) * u = g * sigmoid(g) * u, chunk by chunk through one reused stack buffer.
        Span<float> sig = stackalloc float[1024];
        for (int i = 0; i < gate.Length; i += sig.Length)
        {
            var g = gate.Slice(i, Math.Min(sig.Length, gate.Length - i));
            var s = sig[..g.Length];
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Multiply(g, up.Slice(i, g.Length), g);
        }
    }

    /// <summary>
    /// Rotary embedding on one head vector. <paramref name="interleaved"/>: rotate pairs (2i, 2i+1) (Meta's original
    /// Llama, llama2.c, DeepSeek's reference, GGUF llama with its permuted Q/K); otherwise rotate halves (i, i+d/2)
    /// (Hugging Face rotate_half: Qwen2, Llama on HF weights). cos/sin hold d/2 values for this position.
    /// </summary>
    public static void Rope(Span<float> v, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved)
    {
        int half = cos.Length;
        if (interleaved)
        {
            for (int i = 0; i < half; i++)
            {
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cos[i] - b * sin[i];
                v[2 * i + 1] = a * sin[i] + b * cos[i];
            }
        }
        else
        {
            for (int i = 0; i < half; i++)
            {
                float a = v[i], b = v[i + half];
                v[i] = a * cos[i] - b * sin[i];
                v[i + half] = a * sin[i] + b * cos[i];
            }
        }
    }
}
