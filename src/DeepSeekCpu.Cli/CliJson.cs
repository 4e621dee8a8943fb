using System.Text.Json.Serialization;

namespace DeepSeekCpu.Cli;

/// <summary>
/// The JSON the CLI writes (tokenize, bench --json), serialized through System.Text.Json's source generator: no
/// reflection, so the native AOT binary (which has reflection-based serialization switched off) writes the same bytes
/// as the JIT build. Names are snake_case, as the records' PascalCase properties become under SnakeCaseLower.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(int[]))]
[JsonSerializable(typeof(TokenizedText))]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class CliJson : JsonSerializerContext;

/// <summary>One line of `tokenize --jsonl`: the ids and the text they encode.</summary>
internal sealed record TokenizedText(int[] Ids, string Text);

/// <summary>`bench --json`: one object per run (BenchCompare reads it back).</summary>
internal sealed record BenchReport(
    string Model, string Memory, string Kernels, string Architecture, int Threads, double LoadMs,
    long WeightBytes, long WeightBytesPerToken, int WarmupRepetitions, int Depth, double DepthFillS,
    BenchTest Pp, BenchTest Tg, double? BandwidthGbS, double? RooflineTg, double? BandwidthFraction);

/// <summary>One test of `bench --json` (pp or tg): rates in tokens/s; Batch only for tg.</summary>
internal sealed record BenchTest(
    int Tokens, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Batch,
    double? Mean, double? Stdev, double? Min, double? Median, double? Max, List<double> Samples);
