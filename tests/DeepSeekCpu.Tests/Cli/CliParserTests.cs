using System.Text.RegularExpressions;
using DeepSeekCpu.Cli;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>The command line on System.CommandLine (issue 15): help with defaults on every command, --version,
/// suggestions for typos, completion through the [suggest] directive, and the old one-line usage errors.</summary>
[Collection("Console")]
public class CliParserTests
{
    private static (int code, string stdout, string stderr) Cli(string[] args, string? stdin = null) => CliRunner.Run(args, stdin);

    [Theory]
    // the defaults the README and the former usage text document
    [InlineData("run", new[] { "--max-tokens", "--temp", "--top-p", "--ctx", "--quant", "--cache-type", "--repack", "--draft-k" }, new[] { "[default: 0.6]", "[default: 0.95]", "[default: f16]", "[default: on]", "[default: 4]" })]
    [InlineData("chat", new[] { "--max-tokens", "--temp", "--system", "--think" }, new[] { "[default: 0.6]" })]
    [InlineData("serve", new[] { "--host", "--port", "--parallel", "--queue", "--timeout", "--max-body", "--api-key" }, new[] { "[default: 127.0.0.1]", "[default: 8080]", "[default: 1]" })]
    [InlineData("bench", new[] { "--prompt-tokens", "--gen-tokens", "--repetitions", "--llama-bench", "--depth" }, new[] { "[default: 512]", "[default: 128]", "[default: 3]" })]
    [InlineData("quantize", new[] { "--type", "--out" }, new string[0])]
    [InlineData("info", new[] { "--ctx", "--parallel", "--cache-type" }, new string[0])]
    [InlineData("logits", new[] { "--tokens", "--out", "--stepwise" }, new string[0])]
    [InlineData("tokenize", new[] { "--text", "--jsonl", "--add-special" }, new string[0])]
    [InlineData("pull", new[] { "MODEL" }, new string[0])]
    public void Every_command_has_help_with_its_options_and_defaults(string command, string[] options, string[] defaults)
    {
        var (code, stdout, stderr) = Cli([command, "--help"]);
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains($" {command} ", stdout);   // the usage line (the program's name is the test host's here)
        foreach (var o in options) Assert.Contains(o, stdout);
        foreach (var d in defaults) Assert.Contains(d, stdout);
        // `help COMMAND` prints the same
        Assert.Equal(stdout, Cli(["help", command]).stdout);
    }

    [Fact]
    public void Version_and_the_command_list()
    {
        var (code, stdout, _) = Cli(["--version"]);
        Assert.Equal(0, code);
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout.Trim());
        // no command: the list of commands, and exit 2 (nothing was done)
        (code, stdout, _) = Cli([]);
        Assert.Equal(2, code);
        foreach (var c in new[] { "run", "chat", "serve", "quantize", "pull", "completion" }) Assert.Contains(c, stdout);
    }

    [Theory]
    [InlineData(new[] { "run", "--tmep", "0" }, "run: unknown argument '--tmep' (did you mean --temp?)")]
    [InlineData(new[] { "serve", "--prot", "80" }, "unknown argument '--prot' (did you mean --port?)")]
    [InlineData(new[] { "srve" }, "unknown command 'srve' (did you mean serve?)")]
    [InlineData(new[] { "run", "--max-token", "3" }, "(did you mean --max-tokens?)")]
    [InlineData(new[] { "run", "--repack", "maybe" }, "run: option --repack expects on or off, got 'maybe'")]
    [InlineData(new[] { "run", "--seed", "-3" }, "option --seed expects a non-negative integer, got '-3'")]
    [InlineData(new[] { "serve", "--parallel", "0" }, "option --parallel expects an integer >= 1 <= 64, got '0'")]
    [InlineData(new[] { "completion", "fish" }, "expected bash or zsh, got 'fish'")]
    [InlineData(new[] { "pull" }, "pull:")]
    public void Typos_and_bad_values_are_one_line_with_a_suggestion(string[] args, string expected)
    {
        var (code, stdout, stderr) = Cli(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("--temp", "--tmep", 1)]       // neighbours swapped
    [InlineData("--temp", "--temp", 0)]
    [InlineData("serve", "srve", 1)]
    [InlineData("kitten", "sitting", 3)]      // the textbook example
    [InlineData("", "abc", 3)]
    public void Edit_distance_counts_swaps_as_one(string a, string b, int expected) =>
        Assert.Equal(expected, Commands.EditDistance(a, b));

    [Fact]
    public void The_suggest_directive_completes_commands_options_and_values()
    {
        string[] Complete(string line) => Cli([$"[suggest:{line.Length}]", line]).stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["serve"], Complete("deepseek-cpu se"));
        Assert.Equal(["--temp", "--temperature"], Complete("deepseek-cpu run --te"));
        Assert.Equal(["bf16", "f16", "f32", "q8_0"], Complete("deepseek-cpu chat --cache-type "));
        Assert.Contains("--port", Complete("deepseek-cpu serve --"));
    }

    [Theory]
    [InlineData("bash", "complete -o default -F _deepseek_cpu_complete deepseek-cpu")]
    [InlineData("zsh", "compdef _deepseek_cpu_complete deepseek-cpu")]
    public void Completion_scripts_ask_the_program_through_the_suggest_directive(string shell, string registration)
    {
        var (code, stdout, _) = Cli(["completion", shell]);
        Assert.Equal(0, code);
        Assert.Contains("[suggest:", stdout);
        Assert.Contains(registration, stdout);
    }

    [Fact]
    public void A_value_starting_with_at_is_text_not_a_response_file()
    {
        // System.CommandLine reads "@FILE" arguments as response files by default; a prompt may start with '@'.
        var (code, stdout, stderr) = Cli(["run", "-p", "@nonexistent", "--raw", "-n", "1", "--no-stats", "--temp", "0"]);
        Assert.True(code == 0, stderr);
        Assert.StartsWith("@nonexistent", stdout);
    }

    [Fact]
    public void Options_take_the_equals_form_and_the_last_of_repeated_values()
    {
        var a = Cli(["run", "-p", "Once upon a time", "--temp=0", "-n", "8", "--no-stats"]);
        var b = Cli(["run", "-p", "Once upon a time", "--temp", "0", "--max-tokens=8", "--no-stats"]);
        Assert.Equal(0, a.code);
        Assert.Equal(a.stdout, b.stdout);
        Assert.Matches(new Regex("^Once upon a time"), a.stdout);
    }
}
