using DeepSeekCpu.Cli;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>
/// The pure parts of `bench --llama-bench/--ik-bench/--batched-bench` (BenchCompare): reading what each bench prints
/// and the table of medians and ratios. The inputs in tests/fixtures/peer-bench are outputs captured on this machine
/// from real runs (see its README): llama.cpp 3f545be's and ik_llama.cpp 8337e4c's llama-bench `-o json` and
/// llama-batched-bench, and our own `bench --json`. The expected numbers below were read off those files by hand.
/// </summary>
[Collection("Console")]
public class BenchCompareTests
{
    private static string Capture(string name) => File.ReadAllText(TestPaths.Fixture("peer-bench", name));

    private static Dictionary<string, IReadOnlyList<double>> ByTest(IEnumerable<BenchCompare.Sample> samples) =>
        samples.ToDictionary(s => s.Test, s => s.Rates);

    [Fact]
    public void Our_json_gives_labelled_samples_at_depth_and_in_batches()
    {
        var deep = ByTest(BenchCompare.ParseOurs(Capture("ours-depth.json")));
        Assert.Equal(["pp16 @ d32", "tg8 @ d32"], deep.Keys);
        Assert.Equal([190.16513464880066, 130.7150028961543], deep["pp16 @ d32"]);
        Assert.Equal([4.8468466143292055, 23.232594865945025], deep["tg8 @ d32"]);

        // -p 0: no prompt test; the batched comparison labels decoding with its number of sequences.
        var batched = ByTest(BenchCompare.ParseOurs(Capture("ours-batch4.json"), batched: true));
        Assert.Equal(["tg8 x4"], batched.Keys);
        Assert.Equal([132.8695080257335, 70.19021548396154], batched["tg8 x4"]);
        Assert.Equal(["tg8"], ByTest(BenchCompare.ParseOurs(Capture("ours-batch4.json"))).Keys);
    }

    [Fact]
    public void Mainline_llama_bench_json_gives_pp_and_tg_with_and_without_depth()
    {
        // llama-bench -m q15-q4_0.gguf -p 16 -n 4 -d 0,64 -r 2 -t 2 -o json (llama.cpp 3f545be; a very busy host)
        string json = Capture("llama-bench-3f545be.json");
        var tests = ByTest(BenchCompare.ParseLlamaBench(json));
        Assert.Equal(["pp16", "tg4", "pp16 @ d64", "tg4 @ d64"], tests.Keys);
        Assert.Equal([1.07097, 1.14806], tests["pp16"]);
        Assert.Equal([0.0792896, 0.129921], tests["tg4"]);
        Assert.Equal([0.991024, 1.05323], tests["pp16 @ d64"]);
        Assert.Equal([0.0729028, 0.0766929], tests["tg4 @ d64"]);
        Assert.Null(BenchCompare.BuildCommit(json));   // built outside a git checkout: "unknown"
    }

    [Fact]
    public void Batched_bench_table_gives_the_aggregate_decoding_rate_per_number_of_sequences()
    {
        // llama-batched-bench -m q15-q4_0.gguf -t 2 -c 128 -npp 8 -ntg 2 -npl 1,2 (llama.cpp 3f545be), stdout
        var tests = ByTest(BenchCompare.ParseBatchedBench(Capture("llama-batched-bench-3f545be.txt")));
        Assert.Equal(["tg2 x1", "tg2 x2"], tests.Keys);
        Assert.Equal([0.09], tests["tg2 x1"]);     // S_TG, not S_PP (0.88) or S (0.32)
        Assert.Equal([0.12], tests["tg2 x2"]);
        Assert.Throws<FormatException>(() => BenchCompare.ParseBatchedBench("main: error: failed to load model\n"));
    }

    [Fact]
    public void Table_gives_medians_ratios_to_each_peer_and_to_the_best_and_the_roofline_share()
    {
        var r = new BenchCompare.Results();
        r.Add("ours", "pp512", [100, 120, 110]);        // median 110
        r.Add("ours", "tg128", [10, 14, 12]);           // median 12
        r.Add("llama.cpp", "pp512", [50, 60]);          // median 55
        r.Add("llama.cpp", "tg128", [8, 6]);            // median 7
        r.Add("ik", "tg128", [16]);                      // no pp test
        r.Add("ours", "tg32 x4", [40]);                  // batched: no roofline share
        r.Add("llama.cpp", "tg32 x4", [20]);
        // 1 GB read per token at 40 GB/s: a roofline of 40 tokens/s.
        var lines = BenchCompare.Render(r, bandwidthGBs: 40, bytesPerToken: 1_000_000_000).TrimEnd().Split('\n');

        Assert.Equal("| test | ours | llama.cpp | ik | ours ÷ llama.cpp | ours ÷ ik | ours ÷ best peer |", lines[0].TrimEnd());
        Assert.Equal("| pp512 | 110.00 (100.00–120.00) | 55.00 (50.00–60.00) | – | 2.00 | – | 2.00 |", lines[2].TrimEnd());
        // tg: 12/40 = 30 % of the roofline, 7/40 = 18 %, 16/40 = 40 %; ik is the best peer: 12/16 = 0.75.
        Assert.Equal("| tg128 | 12.00 (10.00–14.00), 30% of roofline | 7.00 (6.00–8.00), 18% of roofline | 16.00 (16.00–16.00), 40% of roofline | 1.71 | 0.75 | 0.75 |", lines[3].TrimEnd());
        Assert.Equal("| tg32 x4 | 40.00 (40.00–40.00) | 20.00 (20.00–20.00) | – | 2.00 | – | 2.00 |", lines[4].TrimEnd());
        Assert.Equal(5, lines.Length);
    }

    [Fact]
    public void Median_of_odd_and_even_counts()
    {
        Assert.Equal(3, BenchCompare.Median([5, 1, 3]));
        Assert.Equal(2.5, BenchCompare.Median([4, 1, 3, 2]));
        Assert.True(double.IsNaN(BenchCompare.Median([])));
    }

    private static (int code, string stderr) Cli(string[] args)
    {
        var (o, e) = (Console.Out, Console.Error);
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        try { return (Commands.Execute(args), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); }
    }

    [Fact]
    public void A_missing_peer_binary_is_named_in_one_line()
    {
        string model = TestPaths.Stories260K;
        var (code, err) = Cli(["bench", "-m", model, "--llama-bench", "/nonexistent/llama-bench"]);
        Assert.Equal(2, code);
        Assert.Contains("--llama-bench '/nonexistent/llama-bench' does not exist", err);
        Assert.Single(err.TrimEnd().Split('\n'));

        (code, err) = Cli(["bench", "-m", model, "--ik-bench", Path.GetDirectoryName(model)!]);
        Assert.Equal(2, code);
        Assert.Contains("is a folder", err);

        (code, err) = Cli(["bench", "-m", model, "--batched-bench", model]);   // exists, but -b is missing
        Assert.Equal(2, code);
        Assert.Contains("-b 1,2,4,8", err);
    }

    [Fact]
    public void Depth_cannot_be_combined_with_batches()
    {
        var (code, err) = Cli(["bench", "-m", TestPaths.Stories260K, "-d", "8", "-b", "2", "-p", "0", "-n", "2", "--no-bandwidth"]);
        Assert.Equal(2, code);
        Assert.Contains("--depth", err);
    }
}
