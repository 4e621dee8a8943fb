using Xunit;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Hub;

namespace DeepSeekCpu.Tests.Hub;

/// <summary>pull, list, rm and MODEL given by name on the command line, against the local hub.</summary>
[Collection("Console")]
public sealed class HubCliTests : IAsyncLifetime
{
    private FakeHub _hub = null!;
    private readonly TestPaths.TempDir _tmp = TestPaths.NewTempDir();

    public async ValueTask InitializeAsync()
    {
        _hub = await FakeHub.Start();
        _hub.Repos["test-org/tiny-qwen2"] = new FakeHub.Repo
        {
            Files =
            {
                ["config.json"] = File.ReadAllBytes(TestPaths.Fixture("tiny-qwen2", "config.json")),
                ["model.safetensors"] = File.ReadAllBytes(TestPaths.Fixture("tiny-qwen2", "model.safetensors")),
            },
        };
    }

    public async ValueTask DisposeAsync() { await _hub.DisposeAsync(); _tmp.Dispose(); }

    private (int code, string stdout, string stderr) Cli(bool offline, params string[] args)
    {
        var (o, e, settings) = (Console.Out, Console.Error, Commands.HubSettings);
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        Commands.HubSettings = () => new HubOptions { Endpoint = _hub.Url, CacheDir = _tmp.Path, Offline = offline, Attempts = 2 };
        try { return (Commands.Execute(args), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); Commands.HubSettings = settings; }
    }

    [Fact]
    public void Pull_list_info_and_rm_by_name()
    {
        var (code, stdout, stderr) = Cli(false, "pull", "test-org/tiny-qwen2");
        Assert.Equal(0, code);
        string commit = _hub.Repos["test-org/tiny-qwen2"].Commit;
        Assert.Equal(Path.Combine(_tmp.Path, "models--test-org--tiny-qwen2", "snapshots", commit), stdout.Trim());
        Assert.Contains("(100%)", stderr);       // piped: plain progress lines
        Assert.DoesNotContain('\r', stderr);

        (code, stdout, _) = Cli(true, "list");
        Assert.Equal(0, code);
        var lines = stdout.TrimEnd().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("NAME", lines[0]);
        Assert.Matches($@"^test-org/tiny-qwen2\s+{commit[..12]} \(main\)\s+\d+\.\d KiB\s+safetensors$", lines[1]);

        // Any command taking MODEL takes the name (offline: from the cache).
        (code, stdout, stderr) = Cli(true, "info", "-m", "test-org/tiny-qwen2");
        Assert.True(code == 0, stderr);
        Assert.Contains("layers:", stdout);

        (code, _, stderr) = Cli(false, "rm", "test-org/tiny-qwen2");
        Assert.Equal(0, code);
        Assert.StartsWith("removed test-org/tiny-qwen2", stderr);
        Assert.False(Directory.Exists(Path.Combine(_tmp.Path, "models--test-org--tiny-qwen2")));

        (code, _, stderr) = Cli(false, "rm", "test-org/tiny-qwen2");
        Assert.Equal(1, code);
        Assert.Equal($"error: test-org/tiny-qwen2: not in the cache {_tmp.Path}", stderr.Trim());
    }

    [Fact]
    public void Errors_by_name_are_one_line()
    {
        var (code, _, stderr) = Cli(true, "run", "-m", "test-org/tiny-qwen2", "-p", "hi");
        Assert.Equal(1, code);
        Assert.Equal($"error: test-org/tiny-qwen2: not in the cache {_tmp.Path} and HF_HUB_OFFLINE is set; run 'deepseek-cpu pull test-org/tiny-qwen2' while online", stderr.Trim());
        (code, _, stderr) = Cli(false, "info", "-m", "test-org/nothing");
        Assert.Equal((1, "error: test-org/nothing: no such model on 127.0.0.1 (404; check the name)"), (code, stderr.Trim()));
        (code, _, stderr) = Cli(false, "pull", "not a name");
        Assert.Equal(1, code);
        Assert.Contains("is not a model name", stderr);
    }

    [Fact]
    public void Progress_is_one_redrawn_line_on_a_terminal_and_plain_lines_when_piped()
    {
        var p1 = new DownloadProgress("o/r", 0, 2, 1 << 20, 4 << 20, 2 << 20, TimeSpan.FromSeconds(90), false);
        var p2 = p1 with { FilesDone = 2, BytesDone = 4 << 20, Remaining = TimeSpan.Zero, Finished = true };
        Assert.Equal("o/r: 1.0 MiB / 4.0 MiB (25%)  2.0 MiB/s  1m30s left  0/2 files", ProgressLine.Describe(p1));

        var tty = new StringWriter();
        var line = new ProgressLine(tty, interactive: true);
        line.Report(p1); line.Report(p1); line.Report(p2);
        string text = tty.ToString();
        Assert.Equal(3, text.Count(c => c == '\r'));
        Assert.Single(text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.EndsWith("\n", text);
        // The last draw pads over the longer line before it.
        Assert.EndsWith("\r" + ProgressLine.Describe(p2).PadRight(ProgressLine.Describe(p1).Length), text.TrimEnd('\n'));

        var piped = new StringWriter();
        line = new ProgressLine(piped, interactive: false);
        line.Report(p1); line.Report(p1); line.Report(p2);   // the second falls within the interval
        Assert.Equal([ProgressLine.Describe(p1), ProgressLine.Describe(p2)], piped.ToString().TrimEnd().Split(Environment.NewLine));
    }
}
