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

    [Fact]
    public void Run_with_a_draft_prints_what_plain_greedy_decoding_prints()
    {
        string m = TestPaths.Stories260K;
        var plain = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80");
        var spec = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80", "--draft", m, "--draft-k", "3", "--quant", "q4_0");
        var specPlainQuant = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80", "--quant", "q4_0");
        Assert.Equal(0, plain.code);
        Assert.Equal(0, spec.code);
        Assert.Equal(specPlainQuant.stdout, spec.stdout);
        Assert.Contains("draft tokens kept", spec.stderr);
        var same = Cli("run", "-m", m, "-p", "Once upon a time", "--temp", "0", "-n", "80", "--draft", m);
        Assert.Equal(plain.stdout, same.stdout);
        Assert.Contains("(100 %), k = 4]", same.stderr);
    }

    [Fact]
    public void Draft_k_without_a_draft_or_out_of_range_is_a_usage_error()
    {
        var (code, _, stderr) = Cli("run", "--draft-k", "3");
        Assert.Equal(2, code);
        Assert.Equal("error: --draft-k needs --draft MODEL", stderr.Trim());
        (code, _, stderr) = Cli("run", "--draft", TestPaths.Stories260K, "--draft-k", "40");
        Assert.NotEqual(0, code);
        Assert.Single(stderr.Trim().Split('\n'));
    }
}
