using System.Numerics.Tensors;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using Xunit;
using static DeepSeekCpu.Tests.Models.Engine;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// The comparisons of a DeepSeek graph (V3, V3.2, V4) with what DeepSeek's own inference/model.py wrote into a fixture:
/// logits rows, the greedy continuation, the indexer's selections and rows decoded together. One body per check, so
/// the three families are held to the same checks.
/// </summary>
internal static class FixtureComparison
{
    /// <summary>float32 rows of a reference .bin ([rows, vocab], little endian).</summary>
    public static float[][] ReadRows(string path, int rows)
    {
        var bytes = File.ReadAllBytes(path);
        var all = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, all, 0, bytes.Length);
        int vocab = all.Length / rows;
        Assert.Equal(rows * vocab, all.Length);
        return Split(all, vocab);
    }

    /// <summary>[n * vocab] → n rows of vocab.</summary>
    public static float[][] Split(float[] all, int vocab) =>
        Enumerable.Range(0, all.Length / vocab).Select(i => all.AsSpan(i * vocab, vocab).ToArray()).ToArray();

    /// <summary>Row i of <paramref name="got"/> within <paramref name="tolerance"/> of reference row firstRow + i, with the same arg max.</summary>
    public static void AssertRowsMatch(string what, float[][] got, float[][] expected, int firstRow = 0, double tolerance = 1e-4)
    {
        double worst = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double d = MaxAbsDiff(got[i], expected[firstRow + i]);
            worst = Math.Max(worst, d);
            Assert.True(d <= tolerance, $"{what} row {firstRow + i}: max abs diff {d}");
            Assert.Equal(TensorPrimitives.IndexOfMax(expected[firstRow + i]), TensorPrimitives.IndexOfMax(got[i]));
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{what}: {got.Length} rows, max abs diff {worst:E2}");
    }

    /// <summary>
    /// The prompt, then <paramref name="greedy"/>.Length greedy steps in one session of <paramref name="contextLength"/>:
    /// the chosen ids are the reference's; with <paramref name="greedyRows"/>, each step's logits match them and the arg
    /// max after the last step is <paramref name="nextAfterGreedy"/>.
    /// </summary>
    public static void AssertGreedyContinuation(ILanguageModel m, int contextLength, int[] prompt, int[] greedy,
        float[][]? greedyRows = null, int nextAfterGreedy = -1)
    {
        using var s = m.NewSession(contextLength);
        var logits = new float[m.Config.VocabSize];
        s.Forward(prompt, logits);
        var got = new List<int>();
        var rows = new List<float[]>();
        for (int i = 0; i < greedy.Length; i++)
        {
            int next = TensorPrimitives.IndexOfMax(logits);
            got.Add(next);
            s.Forward([next], logits);
            rows.Add(logits.ToArray());
        }
        Assert.Equal(greedy, got);
        if (greedyRows == null) return;
        Assert.Equal(nextAfterGreedy, TensorPrimitives.IndexOfMax(logits));
        AssertRowsMatch("greedy", [.. rows], greedyRows);
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> (one prefill, or one token at a time) while <paramref name="observe"/> records
    /// each indexer's selection; every reference layer's selection at every position must be the reference's.
    /// </summary>
    public static void AssertSelectionsMatch(ILanguageModel m, Action<SelectionObserver> observe, int[] tokens, bool prefill,
        IEnumerable<KeyValuePair<int, int[][]>> reference)
    {
        var seen = new Dictionary<(int, int), int[]>();
        observe((layer, pos, selected) => seen[(layer, pos)] = selected.ToArray());
        if (prefill) Prefill(m, tokens); else Stepwise(m, tokens);
        foreach (var (layer, perPosition) in reference)
            for (int pos = 0; pos < tokens.Length; pos++)
                Assert.True(perPosition[pos].SequenceEqual(seen[(layer, pos)]),
                    $"layer {layer} position {pos}: selected [{string.Join(",", seen[(layer, pos)])}], reference [{string.Join(",", perPosition[pos])}]");
    }

    /// <summary>
    /// Continuous batching: session i, fed the first <paramref name="start"/>[i] prompt tokens, decodes the next
    /// <paramref name="steps"/> prompt tokens in DecodeBatch calls together with the others; each row must be within
    /// <paramref name="tolerance"/> of the reference row of its position, and each session one position further.
    /// </summary>
    public static void AssertDecodeBatchMatches(ILanguageModel m, int[] prompt, float[][] rows, int[] start, int steps,
        int contextLength, double tolerance)
    {
        int vocab = m.Config.VocabSize;
        var sessions = start.Select(k =>
        {
            var s = m.NewSession(contextLength);
            s.Forward(prompt.AsSpan(0, k), new float[vocab]);
            return s;
        }).ToList();
        var logits = new float[sessions.Count * vocab];
        for (int step = 0; step < steps; step++)
        {
            m.DecodeBatch(sessions, start.Select(k => prompt[k + step]).ToArray(), logits);
            for (int i = 0; i < sessions.Count; i++)
            {
                int pos = start[i] + step;
                Assert.Equal(pos + 1, sessions[i].Position);
                double d = MaxAbsDiff(logits.AsSpan(i * vocab, vocab), rows[pos]);
                Assert.True(d <= tolerance, $"session {i} position {pos}: max abs diff {d}");
            }
        }
        foreach (var s in sessions) s.Dispose();
    }
}
