using DeepSeekCpu.Generation;
using Xunit;

namespace DeepSeekCpu.Tests.Generation;

public class SamplerTests
{
    [Fact]
    public void Repetition_penalty_applies_once_per_distinct_token()
    {
        // CTRL-style penalty as llama.cpp applies it: a positive logit seen in the window is divided by the penalty
        // once, however often it occurred. 3 / 2 = 1.5 still beats 1.2; compounding (3 / 4 = 0.75) would not.
        var s = new Sampler(SamplingOptions.Greedy with { RepetitionPenalty = 2f });
        Assert.Equal(0, s.Sample([3f, 1.2f], [0, 0, 0]));
        var t = new Sampler(SamplingOptions.Greedy with { RepetitionPenalty = 2f });
        Assert.Equal(1, t.Sample([3f, 1.6f], [0]));
    }

    [Fact]
    public void Top_k_one_is_greedy_whatever_the_seed_and_temperature()
    {
        float[] logits = [0.1f, 2.5f, 2.4f, -1f];
        for (ulong seed = 1; seed < 20; seed++)
            Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 1.5f, TopK = 1, Seed = seed }).Sample((float[])logits.Clone(), []));
    }

    [Fact]
    public void Top_p_keeps_only_the_nucleus()
    {
        // softmax([5, 5, -5, -5]) ≈ [0.5, 0.5, 2e-5, 2e-5]: with top-p 0.9 only ids 0 and 1 can be drawn.
        var seen = new HashSet<int>();
        for (ulong seed = 1; seed < 200; seed++)
            seen.Add(new Sampler(new SamplingOptions { Temperature = 1f, TopP = 0.9f, Seed = seed }).Sample([5f, 5f, -5f, -5f], []));
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Nan_logits_do_not_crash()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 0.7f, Seed = 1 });
        int id = s.Sample([float.NaN, float.NaN, float.NaN], []);
        Assert.InRange(id, 0, 2);
    }
}
