using System.Text.Json;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>Issue 15, R1-friendly defaults: generation until the end of the sequence or the context, R1's sampling,
/// a cut reasoning reported as cut, prompts from stdin and files, and the chat commands.</summary>
[Collection("Console")]
public class CliDefaultsTests
{
    private static (int code, string stdout, string stderr) Cli(string[] args, string? stdin = null) => CliRunner.Run(args, stdin);

    [Fact]
    public void Help_states_the_defaults_DeepSeek_recommends_for_R1()
    {
        // DeepSeek-R1 model card: temperature 0.5-0.7 (0.6 recommended), top-p 0.95; Ollama generates until the end.
        var help = Cli(["run", "--help"]).stdout;
        Assert.Contains("[default: 0.6]", help);
        Assert.Contains("[default: 0.95]", help);
        Assert.Matches(@"--max-tokens[^\n]*-1: until the model ends or the context is full[^\n]*\[default: -1\]", help);
        Assert.Contains("[default: -1]", Cli(["chat", "--help"]).stdout);
    }

    [Fact]
    public void Without_max_tokens_generation_runs_to_the_end_of_the_story()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tiny-stories260K-reference", "reference.json")));
        var continuation = doc.RootElement.GetProperty("greedy_continuation_64").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var tok = Llama2cTokenizer.Load(Path.Combine(Path.GetDirectoryName(TestPaths.Stories260K)!, "tok512.bin"), 512);
        var (code, stdout, stderr) = Cli(["run", "-p", "Once upon a time", "--temp", "0"]);
        Assert.Equal(0, code);
        // more than the former default of 256 tokens' worth is allowed: the story goes on past the reference's 64 tokens
        // (or ends at its end-of-sequence), starting with exactly the reference's greedy continuation
        int stop = Array.FindIndex(continuation, id => tok.StopIds.Contains(id));
        string expected = "Once upon a time" + tok.Decode(stop < 0 ? continuation : continuation[..stop]);
        Assert.StartsWith(expected.TrimEnd(), stdout);
        Assert.Matches(@"\| (stop|length)\]", stderr);
        if (stderr.Contains("| length]")) Assert.Contains("(stopped at the end of the", stderr);   // the context, not a token limit
        if (stop >= 0) Assert.Equal(expected.TrimEnd(), stdout.TrimEnd());
        else Assert.True(int.Parse(System.Text.RegularExpressions.Regex.Match(stderr, @"generation (\d+) tokens").Groups[1].Value) > 64, stderr);
    }

    [Fact]
    public void A_limit_says_where_it_stopped()
    {
        var (code, _, stderr) = Cli(["run", "-p", "Once upon a time", "--temp", "0", "-n", "5", "--no-stats"]);
        Assert.Equal(0, code);
        Assert.Contains("(stopped at the --max-tokens limit of 5)", stderr);
        Assert.Equal(2, Cli(["run", "-n", "0"]).code);   // 0 tokens is not a request
    }

    private static GenerationResult Result(FinishReason reason, int tokens) => new() { FinishReason = reason, CompletionTokens = tokens };

    [Fact]
    public void A_reasoning_cut_off_is_reported_as_cut_and_not_as_done()
    {
        var shown = new StringWriter();
        var printer = new StreamPrinter(shown, hideReasoning: false);
        printer.Write("Let me think about", TextKind.Reasoning);
        printer.End(cut: true);
        Assert.True(printer.EndedInReasoning);
        Assert.Equal("<think>\nLet me think about\n</think>\n\n", shown.ToString());   // piped: still split by tags
        var err = Console.Error;
        var sw = new StringWriter();
        Console.SetError(sw);
        try
        {
            Commands.Explain(printer, Result(FinishReason.Length, 256), 256, 4096);
            Assert.Equal("(the reasoning was cut off at the --max-tokens limit of 256: the answer never began)", sw.ToString().Trim());

            // --hide-reasoning: nothing on stdout, and stderr says the answer never began and why
            var hidden = new StreamPrinter(new StringWriter(), hideReasoning: true);
            hidden.Write("thinking", TextKind.Reasoning);
            hidden.End(cut: true);
            sw.GetStringBuilder().Clear();
            Commands.Explain(hidden, Result(FinishReason.Length, 100), int.MaxValue, 128);
            Assert.Contains("(no answer: the reasoning was cut off at the end of the 128-token context (--ctx) before the answer began", sw.ToString());

            // the model ending inside its reasoning, with the reasoning hidden
            hidden = new StreamPrinter(new StringWriter(), hideReasoning: true);
            hidden.Write("thinking", TextKind.Reasoning);
            hidden.End();
            sw.GetStringBuilder().Clear();
            Commands.Explain(hidden, Result(FinishReason.Stop, 10), int.MaxValue, 128);
            Assert.Contains("(no answer: the model ended inside its reasoning", sw.ToString());

            // a finished answer: nothing to explain
            var done = new StreamPrinter(new StringWriter(), hideReasoning: false);
            done.Write("thinking", TextKind.Reasoning);
            done.Write("The answer.", TextKind.Answer);
            done.End();
            sw.GetStringBuilder().Clear();
            Commands.Explain(done, Result(FinishReason.Stop, 10), int.MaxValue, 128);
            Assert.Equal("", sw.ToString());
        }
        finally { Console.SetError(err); }
    }

    [Fact]
    public void Prompts_come_from_p_dash_f_file_and_piped_stdin_alike()
    {
        string[] common = ["run", "--temp", "0", "-n", "12", "--no-stats"];
        var direct = Cli([.. common, "-p", "Once upon a time"]);
        Assert.Equal(0, direct.code);
        Assert.Equal(direct.stdout, Cli([.. common, "-p", "-"], "Once upon a time\n").stdout);
        using var tmp = TestPaths.NewTempDir();
        File.WriteAllText(tmp.File("prompt.txt"), "Once upon a time\n");
        Assert.Equal(direct.stdout, Cli([.. common, "-f", tmp.File("prompt.txt")]).stdout);
        var piped = Commands.InputIsPiped;
        Commands.InputIsPiped = () => true;
        try { Assert.Equal(direct.stdout, Cli(common, "Once upon a time\n").stdout); }
        finally { Commands.InputIsPiped = piped; }

        var both = Cli([.. common, "-p", "x", "-f", tmp.File("prompt.txt")]);
        Assert.Equal(2, both.code);
        Assert.Contains("give -p TEXT or -f FILE, not both", both.stderr);
        Assert.Equal(2, Cli([.. common, "-f", tmp.File("missing.txt")]).code);
    }

    [Fact]
    public void Triple_quotes_make_one_message_of_several_lines()
    {
        var input = new StringReader("\"\"\"first line\nsecond line\n\"\"\"\nnext\n\"\"\"one line\"\"\"\n\"\"\"never closed\n");
        var err = Console.Error;
        Console.SetError(new StringWriter());
        try
        {
            Assert.Equal("first line\nsecond line", Commands.ReadMessage(input));
            Assert.Equal("next", Commands.ReadMessage(input));
            Assert.Equal("one line", Commands.ReadMessage(input));
            Assert.Equal("never closed", Commands.ReadMessage(input));
            Assert.Null(Commands.ReadMessage(input));
        }
        finally { Console.SetError(err); }
    }

    [Fact]
    public void Chat_commands_help_set_save_and_load()
    {
        using var tmp = TestPaths.NewTempDir();
        string file = tmp.File("conversation.json");
        var (code, stdout, stderr) = Cli(["chat", "-n", "10", "--no-stats"],
            $"/help\n/set temp 0\n/set top-k 3\n/set temp -1\n/show\nOnce upon a time\n/save {file}\n/bogus\n/exit\n");
        Assert.Equal(0, code);
        Assert.Contains("/save FILE", stderr);                    // /help
        Assert.Contains("(set temp 0)", stderr);
        Assert.Contains("(not set: temperature must be >= 0", stderr);
        Assert.Contains("temp 0, top-p 0.95, top-k 3,", stderr);   // /show
        Assert.Contains("(unknown command /bogus", stderr);
        using (var doc = JsonDocument.Parse(File.ReadAllText(file)))
        {
            var messages = doc.RootElement.GetProperty("messages").EnumerateArray().ToList();
            Assert.Equal(["user", "assistant"], messages.Select(m => m.GetProperty("role").GetString()));
            Assert.Equal("Once upon a time", messages[0].GetProperty("content").GetString());
            Assert.Equal(stdout.Trim(), messages[1].GetProperty("content").GetString());
        }
        // /load brings the conversation back; a broken file is one line and the chat goes on
        File.WriteAllText(tmp.File("bad.json"), "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}");
        (code, _, stderr) = Cli(["chat", "--no-stats"], $"/load {file}\n/show\n/load {tmp.File("bad.json")}\n/exit\n");
        Assert.Equal(0, code);
        Assert.Contains("(loaded 2 messages", stderr);
        Assert.Contains("; 2 messages", stderr);
        Assert.Contains("message 1 needs a \"role\"", stderr);
    }
}
