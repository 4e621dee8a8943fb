using System.Formats.Tar;
using System.IO.Compression;
using DeepSeekCpu.Fuzzing;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// Replays tests/fuzz-corpus/TARGET/*: the seeds of each fuzz target and every input the fuzzers (tools/fuzz.sh)
/// found to crash, hang or allocate without bound before the reader was fixed. Each must load or fail with the
/// reader's clean one-line error naming the file (<see cref="FuzzTargets"/> throws otherwise), without an allocation
/// sized by the input. The same holds for every input of the fuzzers' kept queues (tests/fuzz-corpus/queues/TARGET.tar.gz:
/// the inputs that reached new coverage, kept by <c>FUZZ_KEEP=1 tools/fuzz.sh</c> so the next machine goes on from them).
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
    public void Input_loads_or_fails_with_a_clean_one_line_error(string target, string file) =>
        Replay(target, file, File.ReadAllBytes(Path.Combine(CorpusDir(), target, file)));

    public static TheoryData<string> Queues()
    {
        var data = new TheoryData<string>();
        foreach (string target in FuzzTargets.Names)
            if (File.Exists(QueuePath(target))) data.Add(target);
        return data;
    }

    private static string QueuePath(string target) => Path.Combine(CorpusDir(), "queues", target + ".tar.gz");

    [Theory]
    [MemberData(nameof(Queues))]
    public void Every_kept_queue_input_loads_or_fails_with_a_clean_one_line_error(string target)
    {
        using var tar = new TarReader(new GZipStream(File.OpenRead(QueuePath(target)), CompressionMode.Decompress));
        int inputs = 0;
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            Assert.InRange(entry.Length, 0, 1 << 20);   // AFL's inputs are small; a larger one is not ours
            using var data = new MemoryStream();
            entry.DataStream?.CopyTo(data);
            Replay(target, entry.Name, data.ToArray());
            inputs++;
        }
        Assert.True(inputs > 0, $"{QueuePath(target)} holds no inputs");
    }

    private void Replay(string target, string name, byte[] input)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        string outcome = FuzzTargets.Run(target, input, _scratch);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.DoesNotContain('\n', outcome);
        Assert.True(allocated < (64L << 20) + 64L * input.Length, $"{target}/{name}: allocated {allocated} bytes for {input.Length} ({outcome})");
    }
}
