using DeepSeekCpu.Models.DeepSeek;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// Random tiny DeepSeek-V3.2 models (MLA + lightning indexer) at several context lengths against top-k, each compared
/// with <see cref="NaiveDeepSeekReference"/> (its indexer: NaiveIndexerReference.cs): logits, and every layer's
/// selection at every position.
/// </summary>
public class DeepSeekV32RandomModelTests
{
    private static TinySpec V32(int topk, int seed, int rope = 4, int indexHeadDim = 16) => new()
    {
        ModelType = "deepseek_v32", Scoring = "sigmoid", TopkMethod = "noaux_tc", NGroup = 2, TopkGroup = 1, NRouted = 8,
        TopK = 2, NormTopk = true, RoutedScale = 2.5, GateBias = true, Rope = rope,
        IndexHeads = 4, IndexHeadDim = indexHeadDim, IndexTopk = topk, Seed = seed,
    };

    /// <summary>(spec name, prompt length): sparse from the 4th, 8th, 16th token; dense (top-k above the prompt); YaRN.</summary>
    public static TheoryData<string, int> Cases() => new()
    {
        { "topk3", 12 }, { "topk8", 40 }, { "topk16", 70 }, { "dense", 20 }, { "yarn", 33 },
    };

    private static TinySpec ByName(string name) => name switch
    {
        "topk3" => V32(3, 31),
        "topk8" => V32(8, 32),
        "topk16" => V32(16, 33, rope: 8, indexHeadDim: 32),
        "dense" => V32(64, 34),
        "yarn" => V32(5, 35, rope: 8) with { Yarn = (40, 16, 32, 1, 1.0, 1.0) },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesIndependentReference(string name, int length)
    {
        var spec = ByName(name);
        var prompt = Enumerable.Range(0, length).Select(i => (i * 37 + 11) % spec.Vocab).ToArray();
        var tensors = TinyDeepSeek.Generate(spec);
        var reference = new NaiveDeepSeekReference(spec, TinyDeepSeek.ValuesByName(tensors));
        var expected = reference.Forward(prompt);
        // a cut closer than float32 can resolve would make the comparison a coin toss: the specs are chosen clear of it
        Assert.True(reference.MinIndexCutMargin > 1e-5, $"{name}: top-k cut margin {reference.MinIndexCutMargin} (choose another seed)");
        Assert.Equal(name == "dense", double.IsPositiveInfinity(reference.MinIndexCutMargin));
        string dir = TinyDeepSeek.WriteFolder(spec, tensors);
        try
        {
            using var m = DeepSeekFixtureTests.Load(dir);
            var seen = new Dictionary<(int, int), int[]>();
            m.SelectionObserver = (layer, pos, selected) => seen[(layer, pos)] = selected.ToArray();
            DeepSeekRandomModelTests.AssertClose(expected, DeepSeekFixtureTests.Stepwise(m, prompt), 1e-3f, $"{name} stepwise");
            foreach (var (key, sel) in reference.Selections)
                Assert.True(sel.SequenceEqual(seen[key]), $"{name} layer {key.Layer} position {key.Position}: [{string.Join(",", seen[key])}] vs reference [{string.Join(",", sel)}]");
            seen.Clear();
            DeepSeekRandomModelTests.AssertClose(expected, DeepSeekFixtureTests.Prefill(m, prompt), 1e-3f, $"{name} prefill");
            foreach (var (key, sel) in reference.Selections) Assert.True(sel.SequenceEqual(seen[key]), $"{name} prefill {key}");
        }
        finally { Directory.Delete(dir, true); }
    }
}
