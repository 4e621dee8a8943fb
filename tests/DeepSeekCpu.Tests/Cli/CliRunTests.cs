using System.Text.Json;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Tokenization;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>
/// The CLI as a user runs it: output on stdout, errors as one line on stderr with a non-zero exit. Expected model
/// output comes from the independent Python reference (tests/fixtures/tiny-stories260K-reference).
/// </summary>
[Collection("Console")]
public class CliRunTests
{
    private static (int code, string stdout, string stderr) Cli(string[] args, string? stdin = null) => CliRunner.Run(args, stdin);

    [Fact]
    public void Think_takes_on_or_off()
    {
        var (code, _, stderr) = Cli(["run", "-p", "Hi", "--think", "maybe", "-n", "1"]);
        Assert.Equal(2, code);
        Assert.Contains("--think 'maybe' is unknown (expected on or off)", stderr);
        // the demo model has no chat template, so no switch: said once, and the run goes on
        (code, _, stderr) = Cli(["run", "-p", "Hi", "--think", "on", "-n", "1", "--no-stats"]);
        Assert.Equal(0, code);
        Assert.Contains("no thinking switch; ignored", stderr);
    }

    private static int[] ReferenceContinuation(out int[] prompt)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tiny-stories260K-reference", "reference.json")));
        prompt = doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        return doc.RootElement.GetProperty("greedy_continuation_64").EnumerateArray().Select(x => x.GetInt32()).ToArray();
    }

    [Fact]
    public void Run_without_a_model_tells_the_demo_story_the_reference_predicts()
    {
        var continuation = ReferenceContinuation(out var prompt);
        var tok = Llama2cTokenizer.Load(Path.Combine(Path.GetDirectoryName(TestPaths.Stories260K)!, "tok512.bin"), 512);
        Assert.Equal(prompt, tok.Encode("Once upon a time", addSpecial: true));

        var (code, stdout, stderr) = Cli(["run", "-p", "Once upon a time", "--temp", "0", "-n", "64"]);
        Assert.Equal(0, code);
        // stdout holds the prompt and the generation only; the statistics go to stderr.
        int stop = Array.FindIndex(continuation, id => tok.StopIds.Contains(id));
        var expected = "Once upon a time" + tok.Decode(stop < 0 ? continuation : continuation[..stop]);
        Assert.Equal(expected.TrimEnd(), stdout.TrimEnd());
        Assert.StartsWith("Once upon a time, there was a little girl", stdout);
        Assert.Contains("tok/s", stderr);
        Assert.Contains("time to first token", stderr);
    }

    [Fact]
    public void Same_seed_gives_the_same_story_and_another_seed_a_different_one()
    {
        string[] args = ["run", "-p", "Once upon a time", "--temp", "1.0", "--top-k", "40", "-n", "40", "--no-stats"];
        var a = Cli([.. args, "--seed", "42"]).stdout;
        var b = Cli([.. args, "--seed", "42"]).stdout;
        var c = Cli([.. args, "--seed", "7"]).stdout;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Chat_keeps_going_until_exit()
    {
        var (code, stdout, _) = Cli(["chat", "--temp", "0", "-n", "20", "--no-stats"], "Once upon a time\n/reset\nOnce upon a time\n/exit\n");
        Assert.Equal(0, code);
        // Without a chat template each line continues the text; after /reset the same line gives the same answer.
        var parts = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(parts.Length >= 2, stdout);
        Assert.Equal(parts[0], parts[1]);
        Assert.StartsWith(", there was a little girl", parts[0]);
    }

    [Theory]
    [InlineData(new[] { "run", "--bogus" }, 2, "unknown argument '--bogus'")]
    [InlineData(new[] { "run", "-n", "many" }, 2, "--max-tokens expects an integer")]
    [InlineData(new[] { "run", "--temp", "-1" }, 2, "--temp expects a number")]
    [InlineData(new[] { "frobnicate" }, 2, "unknown command 'frobnicate'")]
    [InlineData(new[] { "run", "-m", "/nonexistent/model.gguf" }, 1, "/nonexistent/model.gguf")]
    [InlineData(new[] { "logits", "-m", "/nonexistent", "--tokens", "1,2", "--out", "/tmp/x" }, 1, "/nonexistent")]
    [InlineData(new[] { "logits", "-m", "x", "--tokens", "1,a" }, 2, "--tokens expects comma-separated integers")]
    public void Bad_input_is_one_line_and_a_nonzero_exit(string[] args, int expectedCode, string expectedText)
    {
        var (code, stdout, stderr) = Cli(args);
        Assert.Equal(expectedCode, code);
        Assert.Equal("", stdout);
        Assert.Contains(expectedText, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }

    [Fact]
    public void A_truncated_model_is_named_in_the_error()
    {
        using var tmp = TestPaths.NewTempDir();
        string bad = tmp.File("stories260K.bin");
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        File.WriteAllBytes(bad, bytes[..(bytes.Length / 2)]);
        File.Copy(Path.Combine(Path.GetDirectoryName(TestPaths.Stories260K)!, "tok512.bin"), tmp.File("tok512.bin"));
        var (code, _, stderr) = Cli(["run", "-m", bad, "-p", "hi"]);
        Assert.Equal(1, code);
        Assert.Contains(bad, stderr);
        Assert.Contains("truncated", stderr);
    }

    [Fact]
    public void Tokenize_matches_the_reference_encodings_and_chat_renderings()
    {
        string dir = TestPaths.Fixture("tokenizers", "r1-distill-qwen");
        var lines = File.ReadLines(Path.Combine(dir, "reference-encodings.jsonl")).Take(20).ToList();
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string text = doc.RootElement.GetProperty("text").GetString()!;
            var ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var (code, stdout, _) = Cli(["tokenize", "-m", dir, "--text", text]);
            Assert.Equal(0, code);
            Assert.Equal(ids, JsonSerializer.Deserialize<int[]>(stdout));
        }
        // --jsonl with chat messages: rendered with the template and the generation prompt.
        using var tmp = TestPaths.NewTempDir();
        var chat = File.ReadAllLines(Path.Combine(dir, "reference-chat.jsonl"));
        string input = tmp.File("in.jsonl");
        File.WriteAllLines(input, chat.Select(l =>
        {
            using var d = JsonDocument.Parse(l);
            return JsonSerializer.Serialize(new { messages = d.RootElement.GetProperty("messages") });
        }));
        var (c2, out2, _) = Cli(["tokenize", "-m", dir, "--jsonl", input]);
        Assert.Equal(0, c2);
        var got = out2.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(chat.Length, got.Length);
        for (int i = 0; i < chat.Length; i++)
        {
            using var want = JsonDocument.Parse(chat[i]);
            using var have = JsonDocument.Parse(got[i]);
            Assert.Equal(want.RootElement.GetProperty("ids").GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()),
                         have.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
            Assert.Equal(want.RootElement.GetProperty("text").GetString(), have.RootElement.GetProperty("text").GetString());
        }
    }
}
