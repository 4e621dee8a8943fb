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

    /// <summary>
    /// On a 4000-token vocabulary with spread-out logits, the draws follow the exact top-k / top-p distribution computed
    /// here independently (sort everything, cut, renormalise): never outside the set, and within a small total
    /// variation distance of it over 40000 draws (measured on 20 groups of equal expected mass).
    /// </summary>
    [Theory]
    [InlineData(0, 0.9f)]
    [InlineData(0, 0.5f)]
    [InlineData(50, 1f)]
    [InlineData(300, 0.8f)]
    public void Draws_follow_the_exact_top_k_top_p_distribution(int topK, float topP)
    {
        int n = 4000;
        var rng = new Random(5);
        var logits = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 6)).ToArray();
        // independent expectation in double precision
        double max = logits.Max();
        var prob = logits.Select(l => Math.Exp(l - max)).ToArray();
        double z = prob.Sum();
        var order = Enumerable.Range(0, n).OrderByDescending(i => prob[i]).ToList();
        int keep = topK > 0 ? Math.Min(topK, n) : n;
        if (topP < 1)
        {
            double cum = 0; int k = 0;
            while (k < keep) { cum += prob[order[k]] / z; k++; if (cum >= topP) break; }
            keep = k;
        }
        var set = order.Take(keep).ToHashSet();
        double setMass = set.Sum(i => prob[i]);

        var sampler = new Sampler(new SamplingOptions { Temperature = 1f, TopK = topK, TopP = topP, Seed = 77 });
        var counts = new int[n];
        const int draws = 40000;
        for (int d = 0; d < draws; d++) counts[sampler.Sample((float[])logits.Clone(), [])]++;
        Assert.All(Enumerable.Range(0, n).Where(i => counts[i] > 0), i => Assert.Contains(i, set));
        // Compare masses over 20 groups of consecutive (by probability) set members of about equal expected mass:
        // per-token frequencies of 40000 draws are too noisy, group masses are not, and a dropped slice shows.
        double tv = 0, expected = 0, observed = 0;
        foreach (int i in order.Take(keep))
        {
            expected += prob[i] / setMass; observed += counts[i] / (double)draws;
            if (expected >= 0.05) { tv += Math.Abs(observed - expected); expected = observed = 0; }
        }
        tv = 0.5 * (tv + Math.Abs(observed - expected));
        TestContext.Current.SendDiagnosticMessage($"top-k {topK} top-p {topP}: total variation over groups {tv:F4}");
        Assert.True(tv < 0.02, $"total variation distance over groups {tv:F4}");
    }

    [Fact]
    public void Nan_logits_do_not_crash()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 0.7f, Seed = 1 });
        int id = s.Sample([float.NaN, float.NaN, float.NaN], []);
        Assert.InRange(id, 0, 2);
    }
}
