using System.Numerics.Tensors;

namespace DeepSeekCpu.Generation;

/// <summary>A generated token's log-probability and the most likely alternatives at its step (OpenAI logprobs).</summary>
internal sealed record TokenLogprob(int Id, float Logprob, IReadOnlyList<TopLogprob> Top)
{
    /// <summary>
    /// Log-softmax of <paramref name="logits"/> at <paramref name="id"/>, and the <paramref name="top"/> largest: the
    /// distribution the sampler drew from at temperature 1 (penalties, biases and a grammar's mask applied; temperature,
    /// top-k and top-p not, as llama.cpp's server and vLLM report them).
    /// </summary>
    public static TokenLogprob Of(ReadOnlySpan<float> logits, int id, int top)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        float logZ = max + (float)Math.Log(sum);
        var best = new List<TopLogprob>(top + 1);
        if (top > 0)
            for (int i = 0; i < logits.Length; i++)
            {
                float x = logits[i];
                if (best.Count == top && x <= best[^1].Logprob) continue;
                int at = best.Count;
                while (at > 0 && best[at - 1].Logprob < x) at--;
                best.Insert(at, new TopLogprob(i, x));
                if (best.Count > top) best.RemoveAt(top);
            }
        for (int i = 0; i < best.Count; i++) best[i] = best[i] with { Logprob = best[i].Logprob - logZ };
        return new TokenLogprob(id, logits[id] - logZ, best);
    }
}

/// <summary>One alternative token and its log-probability.</summary>
internal readonly record struct TopLogprob(int Id, float Logprob);
