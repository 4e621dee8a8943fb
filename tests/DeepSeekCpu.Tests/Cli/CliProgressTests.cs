using DeepSeekCpu.Cli;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>Issue 15, progress: the engine reports through IProgress (LocalModel.Load), the CLI draws it; when stderr
/// is not a terminal a long step prints a plain line every 10 s and a last one, a short step nothing.</summary>
[Collection("Console")]
public class CliProgressTests
{
    private sealed class Recorder<T> : IProgress<T>
    {
        public readonly List<T> Reports = [];
        public void Report(T value) { lock (Reports) Reports.Add(value); }
    }

    [Fact]
    public void Loading_reports_the_matrices_built_and_the_end()
    {
        var progress = new Recorder<LoadProgress>();
        using var lm = LocalModel.Load(TestPaths.Stories260K, progress: progress);
        long total = lm.Model.Weights.TotalBytes;
        Assert.True(progress.Reports.Count > 2, $"{progress.Reports.Count} reports");
        Assert.All(progress.Reports, r => Assert.InRange(r.BytesDone, 0, r.BytesTotal));
        Assert.All(progress.Reports, r => Assert.Equal(total, r.BytesTotal));
        Assert.Equal(new LoadProgress(TestPaths.Stories260K, total, total, true), progress.Reports[^1]);
        Assert.Single(progress.Reports, r => r.Finished);
        // without a listener nothing changes: the same logits either way
        using var plain = LocalModel.Load(TestPaths.Stories260K);
        Assert.Equal(plain.Model.WeightBytesPerToken, lm.Model.WeightBytesPerToken);
    }

    [Fact]
    public void Plain_lines_come_every_ten_seconds_and_only_for_long_steps()
    {
        var now = TimeSpan.Zero;
        var clock = ProgressView.Clock;
        ProgressView.Clock = () => now;
        try
        {
            var quick = new StringWriter();
            var lines = new ProgressView.PlainLines("loading m", quick);
            now = TimeSpan.FromSeconds(3);
            lines.Report(new Step(50, 100));
            lines.End();
            Assert.Equal("", quick.ToString());   // a 3 s step prints nothing

            var slow = new StringWriter();
            now = TimeSpan.Zero;
            lines = new ProgressView.PlainLines("loading m", slow);
            foreach (int s in new[] { 5, 10, 15, 21, 25 })
            {
                now = TimeSpan.FromSeconds(s);
                lines.Report(new Step(s * 1024L * 1024, 40 * 1024L * 1024));
            }
            now = TimeSpan.FromSeconds(40);
            lines.End();
            // at 10 s, 10 of 40 MiB: a quarter in 10 s leaves 30 s; at 21 s, 21 of 40: 19 s left
            Assert.Equal(["loading m: 10.0 MiB / 40.0 MiB (25%), 30s left", "loading m: 21.0 MiB / 40.0 MiB (52%), 19s left", "loading m: done in 40 s"],
                slow.ToString().TrimEnd().Split(Environment.NewLine));
        }
        finally { ProgressView.Clock = clock; }
    }

    [Fact]
    public void A_quick_load_with_stderr_piped_prints_no_progress()
    {
        var terminal = ProgressView.IsTerminal;
        ProgressView.IsTerminal = () => false;
        try
        {
            var (code, _, stderr) = CliRunner.Run(["run", "-p", "Once", "-n", "2", "--no-stats"]);
            Assert.Equal(0, code);
            Assert.DoesNotContain("loading", stderr);
        }
        finally { ProgressView.IsTerminal = terminal; }
    }
}
