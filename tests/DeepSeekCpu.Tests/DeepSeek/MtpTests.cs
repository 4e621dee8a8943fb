using System.Text;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// DeepSeek-V3's multi-token-prediction layer: its logits against <see cref="NaiveDeepSeekReference.MtpForward"/>
/// (the report's equations in float64, no engine code) in every storage form, and self-speculation with it
/// (run --mtp) producing exactly the tokens of plain decoding.
/// </summary>
public class MtpTests
{
    private static readonly int[] Prompt = DeepSeekRandomModelTests.Prompt;

    /// <summary>V3 routing (sigmoid, noaux_tc, groups) with one MTP layer, no YaRN (GGUF keeps one mscale).</summary>
    internal static TinySpec V3Mtp => new()
    {
        Scoring = "sigmoid", TopkMethod = "noaux_tc", NGroup = 4, TopkGroup = 2, NRouted = 8, TopK = 2, NormTopk = true,
        RoutedScale = 2.5, GateBias = true, MtpLayers = 1, Seed = 31,
    };

    /// <summary>The official checkpoint's shape class: FP8 linear weights over several 128x128 scale blocks.</summary>
    private static TinySpec Fp8Mtp => new()
    {
        Hidden = 160, QLoraRank = 136, KvLoraRank = 40, Heads = 3, Nope = 16, Rope = 8, V = 16, Intermediate = 200,
        MoeIntermediate = 48, NRouted = 4, TopK = 2, NShared = 1, Scoring = "sigmoid", TopkMethod = "noaux_tc",
        NGroup = 2, TopkGroup = 1, NormTopk = true, RoutedScale = 2.5, GateBias = true, Vocab = 150, MtpLayers = 1, Seed = 22,
    };

    /// <summary>The model in one storage form, its tensors' values as stored (dequantized), and a cleanup.</summary>
    private static (DeepSeekModel, TinySpec, Dictionary<string, float[]>, Action) Open(string form)
    {
        var spec = form switch { "yarn-tied" => DeepSeekRandomModelTests.V3Yarn, "fp8" => Fp8Mtp, _ => V3Mtp };
        var tensors = TinyDeepSeek.Generate(spec);
        if (form == "fp8") DeepSeekRandomModelTests.OfficialLayout(tensors);
        string path = form.StartsWith("gguf")
            ? DeepSeekGgufTests.WriteGguf(spec, tensors, splitKvB: form == "gguf-split", q8: false)
            : TinyDeepSeek.WriteFolder(spec, tensors);
        var m = DeepSeekFixtureTests.Load(path);
        return (m, spec, TinyDeepSeek.ValuesByName(tensors), () =>
        {
            if (Directory.Exists(path)) Directory.Delete(path, true); else File.Delete(path);
        });
    }

    public static TheoryData<string> Forms() => new("f32", "yarn-tied", "fp8", "gguf", "gguf-split");

    /// <summary>
    /// Row i of the module (h_i with t_{i+1}) against the reference, reached three ways on one session: a prompt whose
    /// rows the module reads at once, then one token at a time (its rows carried over), then cut back and continued
    /// with other tokens (its rows past the cut must be rebuilt, not reused).
    /// </summary>
    [Theory]
    [MemberData(nameof(Forms))]
    public void Mtp_logits_match_the_reference(string form)
    {
        var (m, spec, values, cleanup) = Open(form);
        try
        {
            Assert.Equal(1, m.MtpLayers);
            var reference = new NaiveDeepSeekReference(spec, values);
            var mtp = m.Mtp!;
            if (form == "fp8") Assert.Equal(Weights.DType.F8_E4M3, m.Weights.Get("model.layers.3.eh_proj.weight").Type);
            var other = Prompt.Take(5).Concat([50, 8, 71, 14, 3, 66]).ToArray();
            foreach (var mode in new[] { MlaMode.Absorbed, MlaMode.Naive })
            {
                m.MlaMode = mode;
                var expected = reference.MtpForward(Prompt);
                using var s = m.NewSession(64);
                var logits = new float[m.Config.VocabSize];
                var guess = new int[1];
                s.Forward(Prompt.AsSpan(0, 6), logits);
                for (int P = 6; P < Prompt.Length; P++)
                {
                    Assert.Equal(1, mtp.Draft(s, Prompt[..P], Prompt[P], guess));
                    AssertRow(expected[P - 1], mtp.Logits, $"{form} {mode} position {P - 1}");
                    Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(mtp.Logits), guess[0]);
                    s.Forward([Prompt[P]], logits);
                }
                // cut back to 5 tokens and go on with others
                var expectedOther = reference.MtpForward(other);
                s.Truncate(5);
                for (int P = 5; P < other.Length; P++)
                {
                    Assert.Equal(1, mtp.Draft(s, other[..P], other[P], guess));
                    AssertRow(expectedOther[P - 1], mtp.Logits, $"{form} {mode} after the cut, position {P - 1}");
                    s.Forward([other[P]], logits);
                }
            }
        }
        finally { m.Dispose(); cleanup(); }
    }

    private static void AssertRow(double[] expected, ReadOnlySpan<float> actual, string what)
    {
        double d = 0;
        for (int i = 0; i < expected.Length; i++) d = Math.Max(d, Math.Abs(expected[i] - actual[i]));
        TestContext.Current.TestOutputHelper?.WriteLine($"{what}: max abs diff {d:E2}");
        Assert.True(d <= 1e-3, $"{what}: max abs diff {d}");
    }

    /// <summary>Generates on a one-slot engine; with <paramref name="mtpK"/> &gt; 0 the MTP layer drafts that many tokens.</summary>
    private static GenerationResult Generate(ILanguageModel m, int[] prompt, GenerationRequest request, int ctx, int mtpK = 0,
        Action<Speculator>? check = null)
    {
        var tok = new Generation.SpeculativeDecodingTests.IdTokenizer(m.Config.VocabSize);
        using var spec = mtpK == 0 ? null : Speculator.WithMtp(m, mtpK);
        using var e = new ChatEngine(m, tok, 1, ctx) { Draft = spec };
        var r = e.CompleteAsync(prompt, false, request).GetAwaiter().GetResult();
        if (spec != null)
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"k = {mtpK}: {spec.Accepted} of {spec.Drafted} kept in {spec.Rounds} rounds");
            Assert.True(spec.Drafted > 0, "the MTP layer guessed");
            check?.Invoke(spec);
        }
        return r;
    }

    private static void AssertSame(GenerationResult plain, GenerationResult spec) => Generation.SpeculativeDecodingTests.AssertSame(plain, spec);

    /// <summary>A small vocabulary, so that the random MTP layer's guesses are kept now and then: both paths run.</summary>
    private static TinySpec SmallVocab => V3Mtp with { Vocab = 12, Seed = 41 };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Greedy_self_speculation_gives_the_tokens_of_plain_decoding(int k)
    {
        var spec = SmallVocab;
        var tensors = TinyDeepSeek.Generate(spec);
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            int[] prompt = [3, 5, 9, 2, 7];
            var request = new GenerationRequest { MaxTokens = 80, Sampling = new SamplingOptions { Temperature = 0 } };
            var plain = Generate(m, prompt, request, 128);
            AssertSame(plain, Generate(m, prompt, request, 128, k, s =>
            {
                Assert.InRange(s.Accepted, 1, s.Drafted - 1);   // kept and rejected guesses both occurred
            }));
            // the context's end and the token budget cut rounds short
            var full = request with { MaxTokens = 1000 };
            AssertSame(Generate(m, prompt, full, 40), Generate(m, prompt, full, 40, k));
            AssertSame(Generate(m, prompt, request with { MaxTokens = 7 }, 64), Generate(m, prompt, request with { MaxTokens = 7 }, 64, k));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Seeded_sampling_with_self_speculation_draws_the_same_tokens()
    {
        var spec = SmallVocab;
        string dir = TinyDeepSeek.WriteFolder(spec, TinyDeepSeek.Generate(spec));
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            var request = new GenerationRequest { MaxTokens = 80, Sampling = new SamplingOptions { Temperature = 1, TopP = 0.9f, Seed = 42, RepetitionPenalty = 1.1f } };
            int[] prompt = [3, 5, 9, 2, 7];
            AssertSame(Generate(m, prompt, request, 128), Generate(m, prompt, request, 128, 2));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_model_without_an_mtp_layer_is_refused_in_one_line()
    {
        var spec = V3Mtp with { MtpLayers = 0 };
        string dir = TinyDeepSeek.WriteFolder(spec, TinyDeepSeek.Generate(spec));
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            Assert.Null(m.Mtp);
            var ex = Assert.Throws<ArgumentException>(() => Speculator.WithMtp(m));
            Assert.Equal("the model has no multi-token-prediction layer (deepseek_v3: num_nextn_predict_layers = 0)", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>An MTP layer without its eh_proj is a one-line format error when the module is first used.</summary>
    [Fact]
    public void An_incomplete_mtp_layer_is_a_one_line_error()
    {
        var spec = V3Mtp;
        var tensors = TinyDeepSeek.Generate(spec).Where(t => t.Name != "model.layers.3.eh_proj.weight").ToList();
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            var ex = Assert.ThrowsAny<Exception>(() => m.Mtp);
            Assert.Contains("model.layers.3.eh_proj.weight", ex.Message);
            Assert.DoesNotContain("\n", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}

