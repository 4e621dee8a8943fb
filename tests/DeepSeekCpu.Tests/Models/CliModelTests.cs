using Xunit;
using System.Buffers.Binary;
using System.Text.RegularExpressions;
using DeepSeekCpu.Cli;

namespace DeepSeekCpu.Tests.Models;

[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>The CLI's `logits` and `info` commands, end to end, against the Python reference / the config arithmetic.</summary>
[Collection("Console")]
public class CliModelTests
{
    private static float[] ReadF32(string path)
    {
        var b = File.ReadAllBytes(path);
        var f = new float[b.Length / 4];
        for (int i = 0; i < f.Length; i++) f[i] = BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(4 * i));
        return f;
    }

    public static TheoryData<string, bool> LogitsCases => new()
    {
        { "tiny-qwen2", false }, { "tiny-qwen2", true }, { "tiny-llama3", false }, { "tiny-llama3", true },
        { "stories260K", false }, { "stories260K", true },
    };

    [Theory]
    [MemberData(nameof(LogitsCases))]
    public void Logits_command_writes_the_reference_logits(string name, bool stepwise)
    {
        bool stories = name == "stories260K";
        var r = ReferenceData.Load(TestPaths.Fixture(stories ? "tiny-stories260K-reference" : name));
        string model = stories ? TestPaths.Stories260K : TestPaths.Fixture(name);
        using var tmp = TestPaths.NewTempDir();
        string outFile = tmp.File("logits.bin");
        string[] args = ["logits", "-m", model, "--cache-type", "f32", "--tokens", string.Join(",", r.Prompt), "--out", outFile];
        if (stepwise) args = [.. args, "--stepwise"];
        Assert.Equal(0, Commands.Dispatch(args));
        var got = ReadF32(outFile);
        Assert.Equal(r.Prompt.Length * r.Vocab, got.Length);
        Engine.AssertClose(r.Logits, got, 1e-4, r.Vocab, $"cli logits {name}{(stepwise ? " --stepwise" : "")}");
    }

    [Theory]
    [InlineData("tiny-qwen2", 2, 2, 8)]
    [InlineData("tiny-llama3", 2, 2, 8)]
    [InlineData("stories260K", 5, 4, 8)]
    public void Info_reports_kv_bytes_per_token(string name, int layers, int kvHeads, int headDim)
    {
        string model = name == "stories260K" ? TestPaths.Stories260K : TestPaths.Fixture(name);
        var saved = Console.Out;
        var sw = new StringWriter();
        Console.SetOut(sw);
        try { Assert.Equal(0, Commands.Dispatch(["info", "-m", model, "--cache-type", "f32"])); }
        finally { Console.SetOut(saved); }
        string text = sw.ToString();
        var m = Regex.Match(text, @"kv cache:\s+([\d,]+) bytes per token");
        Assert.True(m.Success, "no 'kv cache: N bytes per token' line in:\n" + text);
        long bytes = long.Parse(m.Groups[1].Value.Replace(",", ""));
        Assert.Equal(2L * layers * kvHeads * headDim * sizeof(float), bytes);
        Assert.Contains($"layers:         {layers}", text);
    }
}
