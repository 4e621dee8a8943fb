using DeepSeekCpu.Models;
using Xunit;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// Batched decoding (continuous batching): several sessions, each at its own position of the reference prompt, fed
/// in one DecodeBatch call, must each get the Python reference's logits for their position.
/// </summary>
public class DecodeBatchTests
{
    [Theory]
    [InlineData("tiny-qwen2")]
    [InlineData("tiny-llama3")]
    [InlineData("tiny-stories260K-reference")]
    public void Sessions_at_different_positions_decode_together_to_the_reference_logits(string name)
    {
        var r = ReferenceData.Load(TestPaths.Fixture(name));
        using var m = ModelLoader.Load(name == "tiny-stories260K-reference" ? TestPaths.Stories260K : TestPaths.Fixture(name), TestPaths.F32Cache);
        int vocab = r.Vocab, n = r.Prompt.Length;
        // session i has been fed the first start[i] prompt tokens (its own prompt, of its own length)
        int[] start = [1, n / 2, n - 3];
        var sessions = start.Select(k =>
        {
            var s = m.NewSession(64);
            s.Forward(r.Prompt.AsSpan(0, k), new float[vocab]);
            return s;
        }).ToList();
        var logits = new float[sessions.Count * vocab];
        for (int step = 0; step < 3; step++)   // three steps: positions advance independently
        {
            int[] tokens = start.Select(k => r.Prompt[k + step]).ToArray();
            m.DecodeBatch(sessions, tokens, logits);
            for (int i = 0; i < sessions.Count; i++)
            {
                int pos = start[i] + step;
                Assert.Equal(pos + 1, sessions[i].Position);
                Engine.AssertClose(r.Logits.AsSpan(pos * vocab, vocab), logits.AsSpan(i * vocab, vocab), 5e-5, vocab, $"{name} session {i} position {pos}");
            }
        }
        foreach (var s in sessions) s.Dispose();
    }

    /// <summary>DeepSeek-V3 (MLA + MoE): each row against DeepSeek's own reference logits for its position.</summary>
    [Fact]
    public void DeepSeek_sessions_at_different_positions_decode_together_to_deepseeks_reference()
    {
        var r = DeepSeek.DeepSeekFixtureTests.LoadReference();
        using var m = DeepSeek.DeepSeekFixtureTests.Load(DeepSeek.DeepSeekFixtureTests.FixtureDir);
        int n = r.PromptIds.Length;
        DeepSeek.FixtureComparison.AssertDecodeBatchMatches(m, r.PromptIds, r.Rows, start: [1, n / 2, n - 3], steps: 3, contextLength: 64, tolerance: 1e-3f);
    }

    [Fact]
    public void A_session_may_appear_only_once_per_batch()
    {
        using var m = ModelLoader.Load(TestPaths.Fixture("tiny-qwen2"), TestPaths.F32Cache);
        using var s = m.NewSession(16);
        s.Forward([1, 2], new float[m.Config.VocabSize]);
        Assert.Throws<ArgumentException>(() => m.DecodeBatch([s, s], [3, 4], new float[2 * m.Config.VocabSize]));
    }
}
