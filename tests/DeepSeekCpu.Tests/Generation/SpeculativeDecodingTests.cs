using System.Text;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Generation;

/// <summary>
/// Draft-model speculation must not change what is generated: the same tokens as plain decoding (greedy, and seeded
/// sampling), whether the draft always agrees with the target, never does, or sometimes, up to the context's end.
/// The tokens are compared through <see cref="IdTokenizer"/>, whose text is the ids themselves.
/// </summary>
public class SpeculativeDecodingTests
{
    private static readonly string Stories = TestPaths.Stories260K;
    private static readonly string Qwen = TestPaths.Fixture("tiny-qwen2");
    private static string DeepSeekV3 => DeepSeek.DeepSeekFixtureTests.FixtureDir;

    /// <summary>Generates from <paramref name="prompt"/> on a one-slot engine, with <paramref name="draft"/> when given.</summary>
    private static GenerationResult Generate(ILanguageModel target, int[] prompt, GenerationRequest request, int ctx,
        ILanguageModel? draft = null, int k = 4, Action<Speculator>? check = null)
    {
        var tok = new IdTokenizer(target.Config.VocabSize);
        using var spec = draft == null ? null : new Speculator(draft, new IdTokenizer(draft.Config.VocabSize), tok, k);
        using var e = new ChatEngine(target, tok, 1, ctx) { Draft = spec };
        var r = e.CompleteAsync(prompt, false, request).GetAwaiter().GetResult();
        if (spec != null)
        {
            Assert.True(spec.Drafted > 0, "the draft guessed");
            Assert.InRange(spec.Accepted, 0, spec.Drafted);
            check?.Invoke(spec);
        }
        return r;
    }

    internal static void AssertSame(GenerationResult plain, GenerationResult spec)
    {
        Assert.Equal(plain.Content, spec.Content);
        Assert.Equal(plain.CompletionTokens, spec.CompletionTokens);
        Assert.Equal(plain.FinishReason, spec.FinishReason);
    }

    private static readonly GenerationRequest Greedy = new() { MaxTokens = 60, Sampling = new SamplingOptions { Temperature = 0 } };

    [Theory]
    [InlineData("stories", 1)]
    [InlineData("stories", 4)]
    [InlineData("stories", 7)]
    [InlineData("qwen2", 3)]
    [InlineData("deepseek-v3", 3)]
    public void A_draft_identical_to_the_target_is_always_kept_and_changes_nothing(string name, int k)
    {
        using var m = Load(name);
        int[] prompt = [1, 5, 9, 13];
        var plain = Generate(m, prompt, Greedy, 64);
        var spec = Generate(m, prompt, Greedy, 64, m, k, s => Assert.Equal(s.Drafted, s.Accepted));
        Assert.True(plain.CompletionTokens > 10, "long enough to need several rounds");
        AssertSame(plain, spec);
    }

    [Theory]
    [InlineData("stories")]
    [InlineData("qwen2")]
    [InlineData("deepseek-v3")]
    public void A_draft_that_always_disagrees_is_never_kept_and_changes_nothing(string name)
    {
        using var m = Load(name);
        using var contrarian = new Contrarian(m);
        int[] prompt = [1, 5, 9, 13];
        var plain = Generate(m, prompt, Greedy, 64);
        var spec = Generate(m, prompt, Greedy, 64, contrarian, 4, s => Assert.Equal(0, s.Accepted));
        AssertSame(plain, spec);
    }

    [Theory]
    [InlineData("stories", "q4_0")]
    [InlineData("qwen2", "q4_0")]
    public void A_quantized_copy_as_draft_changes_nothing(string name, string quant)
    {
        using var m = Load(name);
        using var draft = ModelLoader.Load(name == "stories" ? Stories : Qwen, new LoadOptions { MatrixTransform = Commands.QuantTransform(quant) });
        int[] prompt = [1, 5, 9, 13];
        var request = Greedy with { MaxTokens = 100 };
        AssertSame(Generate(m, prompt, request, 128), Generate(m, prompt, request, 128, draft, 5));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(7)]
    public void At_the_context_edge_the_same_tokens_end_with_length(int k)
    {
        using var m = Load("stories");
        using var contrarian = new Contrarian(m);
        int[] prompt = [1, 5, 9, 13, 20];
        var request = Greedy with { MaxTokens = 1000 };
        var plain = Generate(m, prompt, request, 29);   // 29 - 5 + 1 = 25 tokens, then the cache is full
        Assert.Equal(FinishReason.Length, plain.FinishReason);
        Assert.Equal(25, plain.CompletionTokens);
        AssertSame(plain, Generate(m, prompt, request, 29, m, k));
        AssertSame(plain, Generate(m, prompt, request, 29, contrarian, k));
        // the token budget ends it mid-round as well
        AssertSame(Generate(m, prompt, Greedy with { MaxTokens = 9 }, 64), Generate(m, prompt, Greedy with { MaxTokens = 9 }, 64, m, k));
    }

    [Fact]
    public void Seeded_sampling_draws_the_same_tokens()
    {
        using var m = Load("stories");
        using var draft = ModelLoader.Load(Stories, new LoadOptions { MatrixTransform = Commands.QuantTransform("q4_0") });
        var request = new GenerationRequest { MaxTokens = 80, Sampling = new SamplingOptions { Temperature = 1, TopP = 0.9f, Seed = 42, RepetitionPenalty = 1.1f } };
        int[] prompt = [1, 5, 9, 13];
        AssertSame(Generate(m, prompt, request, 128), Generate(m, prompt, request, 128, draft, 4));
    }

    [Fact]
    public void A_draft_with_another_vocabulary_is_refused_in_one_line()
    {
        using var m = Load("stories");
        var ex = Assert.Throws<ArgumentException>(() => new Speculator(m, new IdTokenizer(100), new IdTokenizer(m.Config.VocabSize)));
        Assert.Equal($"the draft model has another vocabulary (100 tokens, the target {m.Config.VocabSize})", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => new Speculator(m, new IdTokenizer(50, shift: 7), new IdTokenizer(50)));
        Assert.Equal("the draft model has another vocabulary (token 0 differs)", ex2.Message);
    }

    private static ILanguageModel Load(string name) => name switch
    {
        "stories" => ModelLoader.Load(Stories),
        "qwen2" => ModelLoader.Load(Qwen),
        _ => ModelLoader.Load(DeepSeekV3),
    };

    /// <summary>Token i is the text "&lt;i&gt;" (shifted by <c>shift</c>): output text spells the ids; no stop tokens.</summary>
    internal sealed class IdTokenizer(int vocab, int shift = 0) : ITokenizer
    {
        public int VocabSize => vocab;
        public int? BosId => null;
        public int? EosId => null;
        public IReadOnlySet<int> StopIds { get; } = new HashSet<int>();
        public int[] Encode(string text, bool addSpecial = false) => throw new NotSupportedException();
        public string Decode(ReadOnlySpan<int> ids) { var sb = new StringBuilder(); foreach (int i in ids) sb.Append($"<{i + shift}>"); return sb.ToString(); }
        public ReadOnlySpan<byte> TokenBytes(int id) => Encoding.ASCII.GetBytes($"<{id + shift}>");
        public int? TokenToId(string token) => null;
        public IChatTemplate? ChatTemplate => null;
    }

    /// <summary>A draft that never guesses the target's greedy token: the target's logits with their maximum removed.</summary>
    private sealed class Contrarian(ILanguageModel inner) : ILanguageModel
    {
        public ModelConfig Config => inner.Config;
        public ModelWeights Weights => inner.Weights;
        public long KvBytesPerToken => inner.KvBytesPerToken;
        public long WeightBytesPerToken => inner.WeightBytesPerToken;
        public IModelSession NewSession(int contextLength) => new Session(inner.NewSession(contextLength));
        public void Dispose() { }

        private sealed class Session(IModelSession s) : IModelSession
        {
            public int Position => s.Position;
            public int ContextLength => s.ContextLength;
            public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
            {
                s.Forward(tokens, logits, allPositions);
                int vocab = logits.Length / (allPositions ? tokens.Length : 1);
                for (int r = 0; r < logits.Length / vocab; r++)
                {
                    var row = logits.Slice(r * vocab, vocab);
                    row[System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row)] = float.NegativeInfinity;
                }
            }
            public void Truncate(int position) => s.Truncate(position);
            public void Dispose() => s.Dispose();
        }
    }
}
