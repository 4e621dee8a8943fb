using DeepSeekCpu.Cli;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>run --draft: the same text as plain greedy decoding, the acceptance line on stderr, bad options refused.</summary>
[Collection("Console")]
public class CliSpeculativeTests
{
    private static (int code, string stdout, string stderr) Cli(params string[] args)
    {
        var (o, e) = (Console.Out, Console.Error);
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        try { return (Commands.Execute(args), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); }
    }

    /// <summary>
    /// The float target: its verification passes over k + 1 rows differ from one-row passes by float rounding only, so
    /// the text is plain decoding's. With --quant (which the draft takes too) the run is only checked to work: the
    /// target's activations are rounded to int8, and a last-bit difference of a batched pass can move one across a
    /// rounding tie, which moves the logits by the quantization noise (seen with DOTNET_EnableAVX512=0 on stories260K
    /// at Q4_0: batched and one-row logits 0.1-0.2 apart after such a flip, and a tie of 0.05 decided the other way; the
    /// README's speculative decoding section says so). A quantized draft before a float target keeps
    /// the text exactly: Generation/SpeculativeDecodingTests.A_quantized_copy_as_draft_changes_nothing.
    /// </summary>
    [Fact]
    public void Run_with_a_draft_prints_what_plain_greedy_decoding_prints()
    {
        string m = TestPaths.Stories260K;
        var plain = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80");
        var spec = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80", "--draft", m, "--draft-k", "3", "--quant", "q4_0");
        Assert.Equal(0, plain.code);
        Assert.True(spec.code == 0, spec.stderr);
        Assert.False(string.IsNullOrWhiteSpace(spec.stdout));
        Assert.Contains("draft tokens kept", spec.stderr);
        var same = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80", "--draft", m);
        Assert.Equal(plain.stdout, same.stdout);
        Assert.Contains("(100 %), k = 4]", same.stderr);
    }

    /// <summary>
    /// run --mtp on a random tiny DeepSeek-V3 model with an MTP layer and DeepSeek-V3's tokenizer (so its vocabulary's
    /// size): the text of plain greedy decoding, and the MTP line on stderr.
    /// </summary>
    [Fact]
    public void Run_with_mtp_prints_what_plain_greedy_decoding_prints()
    {
        var spec = DeepSeek.MtpTests.V3Mtp with { Vocab = 129280, Tie = true, Hidden = 16, Seed = 5 };
        string dir = DeepSeek.TinyDeepSeek.WriteFolder(spec, DeepSeek.TinyDeepSeek.Generate(spec));
        try
        {
            string tok = TestPaths.Fixture("tokenizers", "deepseek-v3", "tokenizer.json");
            string[] run = ["run", "-m", dir, "--tokenizer", tok, "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "24"];
            var plain = Cli(run);
            var mtp = Cli([.. run, "--mtp", "--draft-k", "2"]);
            Assert.Equal(0, plain.code);
            Assert.Equal(0, mtp.code);
            Assert.Equal(plain.stdout, mtp.stdout);
            Assert.Contains("MTP tokens kept", mtp.stderr);
            Assert.Contains("k = 2]", mtp.stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Draft_k_without_a_draft_or_out_of_range_is_a_usage_error()
    {
        var (code, _, stderr) = Cli("run", "--draft-k", "3");
        Assert.Equal(2, code);
        Assert.Equal("error: --draft-k needs --draft MODEL or --mtp", stderr.Trim());
        (code, _, stderr) = Cli("run", "--draft", TestPaths.Stories260K, "--mtp");
        Assert.Equal(2, code);
        Assert.Equal("error: --draft and --mtp exclude each other", stderr.Trim());
        (code, _, stderr) = Cli("run", "-m", TestPaths.Stories260K, "--mtp", "-p", "Once", "-n", "4");
        Assert.NotEqual(0, code);
        Assert.Equal("error: the model has no multi-token-prediction layer (llama2.c: num_nextn_predict_layers = 0)", stderr.Trim());
        (code, _, stderr) = Cli("run", "--draft", TestPaths.Stories260K, "--draft-k", "40");
        Assert.NotEqual(0, code);
        Assert.Single(stderr.Trim().Split('\n'));
    }
}
