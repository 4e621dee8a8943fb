using DeepSeekCpu.Models;
using Xunit;

namespace DeepSeekCpu.Tests.Models;

/// <summary>
/// The session and batch contract that both model families share (ILanguageModel / IModelSession docs): the same
/// inputs are accepted or refused the same way by Llama/Qwen2 and by DeepSeek, and a refused call changes nothing.
/// </summary>
public class SessionContractTests
{
    public static TheoryData<string> Models() => new("tiny-qwen2", "tiny-llama3", "deepseek-v3-tiny");

    private static ILanguageModel Open(string name) => ModelLoader.Load(TestPaths.Fixture(name), TestPaths.F32Cache);

    private static IModelSession Fed(ILanguageModel m, int context, params int[] tokens)
    {
        var s = m.NewSession(context);
        s.Forward(tokens, new float[m.Config.VocabSize]);
        return s;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_of_no_tokens_is_refused(string name)
    {
        using var m = Open(name);
        using var s = Fed(m, 16, 1, 2);
        Assert.Throws<ArgumentException>(() => s.Forward([], new float[m.Config.VocabSize]));
        Assert.Equal(2, s.Position);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_past_the_context_or_outside_the_vocabulary_is_refused_and_changes_nothing(string name)
    {
        using var m = Open(name);
        int vocab = m.Config.VocabSize;
        using var s = Fed(m, 4, 1, 2, 3);
        Assert.Throws<InvalidOperationException>(() => s.Forward([4, 5], new float[vocab]));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Forward([vocab], new float[vocab]));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Forward([-1], new float[vocab]));
        Assert.Throws<ArgumentException>(() => s.Forward([4], new float[vocab - 1]));
        Assert.Equal(3, s.Position);
        s.Forward([4], new float[vocab]);                       // the last free position is still usable
        Assert.Equal(4, s.Position);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Truncate_accepts_0_to_Position_and_refuses_the_rest(string name)
    {
        using var m = Open(name);
        using var s = Fed(m, 16, 1, 2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Truncate(4));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Truncate(-1));
        Assert.Equal(3, s.Position);
        s.Truncate(3);
        Assert.Equal(3, s.Position);
        s.Truncate(1);
        Assert.Equal(1, s.Position);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void NewSession_caps_the_context_at_the_models_maximum_and_refuses_less_than_one(string name)
    {
        using var m = Open(name);
        int max = m.Config.MaxPositionEmbeddings;
        using (var s = m.NewSession(max + 100)) Assert.Equal(max, s.ContextLength);
        using (var s = m.NewSession(7)) Assert.Equal(7, s.ContextLength);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.NewSession(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.NewSession(-5));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void DecodeBatch_refuses_bad_batches_before_changing_any_session(string name)
    {
        using var m = Open(name);
        using var other = Open(name);
        int vocab = m.Config.VocabSize;
        using var a = Fed(m, 16, 1, 2);
        using var b = Fed(m, 3, 1, 2, 3);                         // full
        using var c = Fed(m, 16, 5);
        using var foreign = Fed(other, 16, 1);
        var logits = new float[3 * vocab];
        Assert.Throws<ArgumentException>(() => m.DecodeBatch([a, c], [1], logits));                       // token count
        Assert.Throws<ArgumentException>(() => m.DecodeBatch([a, c], [1, 2], new float[2 * vocab - 1]));  // logits room
        Assert.Throws<ArgumentException>(() => m.DecodeBatch([a, foreign], [1, 2], logits));              // another model
        Assert.Throws<ArgumentException>(() => m.DecodeBatch([a, c, a], [1, 2, 3], logits));              // twice
        Assert.Throws<InvalidOperationException>(() => m.DecodeBatch([a, b], [1, 2], logits));            // context full
        Assert.Throws<ArgumentOutOfRangeException>(() => m.DecodeBatch([a, c], [1, vocab], logits));      // vocabulary
        Assert.Equal([2, 3, 1], new[] { a.Position, b.Position, c.Position });
        m.DecodeBatch([], [], logits);                                                                    // nothing to do
        m.DecodeBatch([a, c], [3, 6], logits);
        Assert.Equal([3, 2], new[] { a.Position, c.Position });
    }

    [Fact]
    public void A_session_of_the_other_family_is_refused_by_DecodeBatch()
    {
        using var llama = Open("tiny-qwen2");
        using var deepseek = Open("deepseek-v3-tiny");
        using var s = Fed(deepseek, 16, 1);
        using var t = Fed(llama, 16, 1);
        Assert.Throws<ArgumentException>(() => llama.DecodeBatch([t, s], [1, 2], new float[2 * Math.Max(llama.Config.VocabSize, deepseek.Config.VocabSize)]));
        Assert.Throws<ArgumentException>(() => deepseek.DecodeBatch([s, t], [1, 2], new float[2 * Math.Max(llama.Config.VocabSize, deepseek.Config.VocabSize)]));
        Assert.Equal(1, s.Position);
        Assert.Equal(1, t.Position);
    }

    /// <summary>One rope table per model, grown to the longest context a session asks for, capped at the model's maximum.</summary>
    [Fact]
    public void The_rope_table_grows_to_the_longest_session_and_keeps_its_values()
    {
        var c = new ModelConfig
        {
            Architecture = Architecture.Llama, VocabSize = 8, HiddenSize = 8, IntermediateSize = 8, NumLayers = 1, NumHeads = 1,
            MaxPositionEmbeddings = 10000,
        };
        var tables = new RopeTables(c, 8);
        var initial = tables.Current;
        Assert.Equal(4096, initial.MaxPositions);
        Assert.Equal(100, tables.Reserve(100));
        Assert.Same(initial, tables.Current);                                 // long enough already: not rebuilt
        Assert.Equal(6000, tables.Reserve(6000));
        Assert.Equal(6000, tables.Current.MaxPositions);
        Assert.Equal(initial.Cos(4095).ToArray(), tables.Current.Cos(4095).ToArray());
        Assert.Equal(initial.Sin(1234).ToArray(), tables.Current.Sin(1234).ToArray());
        Assert.Equal(10000, tables.Reserve(20000));
        Assert.Equal(10000, tables.Current.MaxPositions);
        Assert.Throws<ArgumentOutOfRangeException>(() => tables.Reserve(0));
    }
}
