using DeepSeekCpu.Fuzzing;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// Replays tests/fuzz-corpus/TARGET/*: the seeds of each fuzz target and every input the fuzzers (tools/fuzz.sh)
/// found to crash, hang or allocate without bound before the reader was fixed. Each must load or fail with the
/// reader's clean one-line error naming the file (<see cref="FuzzTargets"/> throws otherwise), without an allocation
/// sized by the input.
/// </summary>
public sealed class FuzzCorpusTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("dsc-fuzz-corpus-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string CorpusDir()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (Path.Combine(d.FullName, "tests", "fuzz-corpus") is var p && Directory.Exists(p)) return p;
        throw new DirectoryNotFoundException("tests/fuzz-corpus not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (string target in FuzzTargets.Names)
            foreach (string f in Directory.GetFiles(Path.Combine(CorpusDir(), target)).Order(StringComparer.Ordinal))
                data.Add(target, Path.GetFileName(f));
        return data;
    }

    [Fact]
    public void Every_target_has_inputs()
    {
        foreach (string target in FuzzTargets.Names)
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(CorpusDir(), target)));
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Input_loads_or_fails_with_a_clean_one_line_error(string target, string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(CorpusDir(), target, file));
        long before = GC.GetAllocatedBytesForCurrentThread();
        string outcome = FuzzTargets.Run(target, input, _scratch);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.DoesNotContain('\n', outcome);
        Assert.True(allocated < (64L << 20) + 64L * input.Length, $"{target}/{file}: allocated {allocated} bytes for {input.Length} ({outcome})");
    }
}
