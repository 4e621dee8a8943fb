using System.Text;
using Xunit;
using DeepSeekCpu.Hub;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;

namespace DeepSeekCpu.Tests.Hub;

/// <summary>
/// Issue 9 against a local hub (<see cref="FakeHub"/>, 127.0.0.1 only): pulls land in Hugging Face's cache layout,
/// cut transfers resume with Range, corrupt ones leave nothing behind, and each failure is one line saying what to do.
/// </summary>
public sealed class HubDownloadTests : IAsyncLifetime
{
    private FakeHub _hub = null!;
    private readonly TestPaths.TempDir _tmp = TestPaths.NewTempDir();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

    private static readonly byte[] Config = File.ReadAllBytes(TestPaths.Fixture("tiny-qwen2", "config.json"));
    private static readonly byte[] Weights = File.ReadAllBytes(TestPaths.Fixture("tiny-qwen2", "model.safetensors"));
    private static readonly string WeightsSha = FakeHub.Sha256(Weights);

    public async ValueTask InitializeAsync()
    {
        _hub = await FakeHub.Start();
        _hub.Repos["test-org/tiny-qwen2"] = new FakeHub.Repo
        {
            Files =
            {
                ["config.json"] = Config,
                ["generation_config.json"] = "{\"temperature\": 0.6}"u8.ToArray(),
                ["model.safetensors"] = Weights,
                ["README.md"] = "# not fetched"u8.ToArray(),
                ["pytorch_model.bin"] = new byte[4096],          // another format: not fetched
                ["original/consolidated.safetensors"] = new byte[2048],
            },
        };
    }

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        _tmp.Dispose();
        _timeout.Dispose();
    }

    private HubOptions Options(string? token = null, bool offline = false, string? endpoint = null) => new()
    {
        Endpoint = endpoint ?? _hub.Url, CacheDir = _tmp.Path, Token = token, Offline = offline,
        StallTimeout = TimeSpan.FromSeconds(10), Attempts = 3,
    };

    private ResolvedModel Pull(string model, HubOptions? o = null, IProgress<DownloadProgress>? progress = null) =>
        new ModelLocator(o ?? Options()).PullAsync(ModelReference.Parse(model), progress, _timeout.Token).GetAwaiter().GetResult();

    private string RepoDir => Path.Combine(_tmp.Path, "models--test-org--tiny-qwen2");
    private string Commit => _hub.Repos["test-org/tiny-qwen2"].Commit;

    private List<string> Requests(string contains) => _hub.Log.Where(l => l.Contains(contains)).ToList();

    [Fact]
    public void Pull_writes_the_layout_python_tools_read_and_the_model_loads()
    {
        var reports = new List<DownloadProgress>();
        var got = Pull("test-org/tiny-qwen2", progress: new Collect(reports));

        Assert.Equal(Path.Combine(RepoDir, "snapshots", Commit), got.Path);
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        // LFS blob named by sha256, small files by git blob sha1, links relative into blobs/.
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(RepoDir, "blobs", WeightsSha)));
        Assert.Equal(Config, File.ReadAllBytes(Path.Combine(RepoDir, "blobs", FakeHub.GitBlobSha1(Config))));
        Assert.Equal(Path.Combine("..", "..", "blobs", WeightsSha), new FileInfo(Path.Combine(got.Path, "model.safetensors")).LinkTarget);
        Assert.Equal(["config.json", "generation_config.json", "model.safetensors"],
            Directory.GetFiles(got.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Requests("README"));
        Assert.Empty(Requests("pytorch_model"));
        Assert.Empty(Requests("original/"));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete"));

        var last = reports[^1];
        Assert.True(last.Finished);
        Assert.Equal(3, last.FilesDone);
        Assert.Equal(Config.Length + Weights.Length + 20, last.BytesTotal);
        Assert.Equal(last.BytesTotal, last.BytesDone);

        var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen2"));
        using var m = ModelLoader.Load(got.Path, TestPaths.F32Cache);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), 1e-4, r.Vocab, "tiny-qwen2 pulled from the local hub");

        // A second pull asks the hub which commit main is and downloads nothing.
        int before = _hub.Log.Count;
        Assert.Equal(got.Path, Pull("test-org/tiny-qwen2").Path);
        Assert.Equal(["GET /api/models/test-org/tiny-qwen2/revision/main?blobs=true"], _hub.Log.Skip(before).ToList());
    }

    [Fact]
    public void A_transfer_cut_in_the_middle_resumes_with_a_range_request()
    {
        _hub.CutOnce[WeightsSha] = Weights.Length / 2;
        var got = Pull("test-org/tiny-qwen2");
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(got.Path, "model.safetensors")));
        var gets = Requests($"GET /cdn/{WeightsSha}");
        Assert.Equal(2, gets.Count);
        Assert.DoesNotContain("bytes=", gets[0]);
        // Resumed from what reached the disk: at least one 4 KiB piece, never past the cut.
        long from = long.Parse(gets[1].Split("bytes=")[1].TrimEnd('-'));
        Assert.InRange(from, 1, Weights.Length / 2);
    }

    [Fact]
    public void A_partial_file_left_by_an_earlier_run_is_resumed_not_refetched()
    {
        string blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, WeightsSha + ".incomplete"), Weights[..40000]);
        var reports = new List<DownloadProgress>();
        var got = Pull("test-org/tiny-qwen2", progress: new Collect(reports));
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(got.Path, "model.safetensors")));
        Assert.Equal([$"GET /cdn/{WeightsSha} bytes=40000-"], Requests($"GET /cdn/{WeightsSha}"));
        Assert.Equal(reports[^1].BytesTotal, reports[^1].BytesDone);
    }

    [Fact]
    public void A_corrupt_transfer_is_an_error_and_leaves_no_file_where_a_complete_one_is_expected()
    {
        _hub.Corrupt[WeightsSha] = true;
        var e = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2"));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("sha256", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(Path.Combine(RepoDir, "blobs", WeightsSha)));
        Assert.False(File.Exists(Path.Combine(RepoDir, "blobs", WeightsSha + ".incomplete")));
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", Commit, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(RepoDir, "refs", "main")));

        // Once the hub serves the right bytes, the same pull completes.
        _hub.Corrupt.Clear();
        Assert.Equal(Weights, File.ReadAllBytes(Path.Combine(Pull("test-org/tiny-qwen2").Path, "model.safetensors")));
    }

    [Fact]
    public void A_gated_repo_needs_a_token_with_access()
    {
        _hub.Repos["test-org/tiny-qwen2"].Gated = true;
        var e = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2"));
        Assert.Contains("gated", e.Message);
        Assert.Contains("HF_TOKEN", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        var denied = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2", Options(token: "hf_wrong")));
        Assert.Contains("HF_TOKEN has no access (403)", denied.Message);

        var got = Pull("test-org/tiny-qwen2", Options(token: FakeHub.GoodToken));
        Assert.True(File.Exists(Path.Combine(got.Path, "model.safetensors")));
    }

    [Fact]
    public void Unknown_repos_and_revisions_are_one_line_404s()
    {
        var e = Assert.Throws<HubException>(() => Pull("test-org/no-such-model"));
        Assert.Equal("test-org/no-such-model: no such model on 127.0.0.1 (404; check the name)", e.Message);
        var rev = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2@v9"));
        Assert.Equal("test-org/tiny-qwen2: no revision 'v9' on 127.0.0.1 (404)", rev.Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp.Path, "models--test-org--no-such-model")));
    }

    [Fact]
    public void Offline_uses_the_cache_and_says_so_when_the_model_is_not_there()
    {
        var e = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2", Options(offline: true)));
        Assert.Contains("not in the cache", e.Message);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Empty(_hub.Log);

        string online = Pull("test-org/tiny-qwen2").Path;
        int before = _hub.Log.Count;
        Assert.Equal(online, Pull("test-org/tiny-qwen2", Options(offline: true)).Path);
        Assert.Equal(online, Pull("test-org/tiny-qwen2@" + Commit, Options(offline: true)).Path);
        Assert.Equal(before, _hub.Log.Count);
    }

    [Fact]
    public void An_unreachable_hub_falls_back_to_the_cache()
    {
        const string closed = "http://127.0.0.1:1";   // nothing listens on port 1
        var e = Assert.Throws<HubException>(() => Pull("test-org/tiny-qwen2", Options(endpoint: closed)));
        Assert.Contains("cannot reach 127.0.0.1", e.Message);
        string online = Pull("test-org/tiny-qwen2").Path;
        Assert.Equal(online, Pull("test-org/tiny-qwen2", Options(endpoint: closed)).Path);
    }

    [Fact]
    public void A_cache_written_by_python_tools_is_found_and_used()
    {
        // Hand-made as huggingface_hub leaves it: blobs by sha256, relative links, refs/main.
        SymlinkSnapshotTests.MakeSnapshot(RepoDir, Commit,
            [("config.json", TestPaths.Fixture("tiny-qwen2", "config.json")), ("model.safetensors", TestPaths.Fixture("tiny-qwen2", "model.safetensors"))]);
        string snapshot = Path.Combine(RepoDir, "snapshots", Commit);
        Assert.Equal(snapshot, Pull("test-org/tiny-qwen2", Options(offline: true)).Path);

        // Online, only generation_config.json (on the hub, not in that snapshot) is fetched.
        Assert.Equal(snapshot, Pull("test-org/tiny-qwen2").Path);
        Assert.Equal(["GET /api/models/test-org/tiny-qwen2/revision/main?blobs=true",
                      "HEAD /test-org/tiny-qwen2/resolve/" + Commit + "/generation_config.json",
                      "GET /test-org/tiny-qwen2/resolve/" + Commit + "/generation_config.json"], _hub.Log.ToList());

        // And the locator hands loaders the snapshot for the name.
        Assert.Equal(snapshot, new ModelLocator(Options(offline: true)).ResolvePath("test-org/tiny-qwen2"));
        using var m = ModelLoader.Load(snapshot, TestPaths.F32Cache);
        Assert.Equal(ReferenceData.Load(TestPaths.Fixture("tiny-qwen2")).Vocab, m.Config.VocabSize);
    }

    [Fact]
    public void Gguf_repos_fetch_only_the_shards_carrying_the_tag()
    {
        byte[] Blob(int n, byte v) => Enumerable.Repeat(v, n).ToArray();
        _hub.Repos["test-org/m-gguf"] = new FakeHub.Repo
        {
            Files =
            {
                ["M-Q4_K_M-00001-of-00002.gguf"] = Blob(3000, 1),
                ["M-Q4_K_M-00002-of-00002.gguf"] = Blob(2000, 2),
                ["M-Q8_0.gguf"] = Blob(5000, 3),
                ["mmproj-M-F16.gguf"] = Blob(1500, 4),
                ["README.md"] = Blob(10, 5),
            },
        };
        var def = Pull("test-org/m-gguf");
        Assert.Equal(WeightFormat.Gguf, def.Selection.Format);
        Assert.EndsWith("M-Q4_K_M-00001-of-00002.gguf", def.Path);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(def.Path)!, "M-Q4_K_M-00002-of-00002.gguf")));
        Assert.Empty(Requests("Q8_0"));
        Assert.Empty(Requests("mmproj"));

        var q8 = Pull("test-org/m-gguf:q8_0");
        Assert.EndsWith("M-Q8_0.gguf", q8.Path);
        Assert.Equal(Blob(5000, 3), File.ReadAllBytes(q8.Path));

        var e = Assert.Throws<HubException>(() => Pull("test-org/m-gguf:IQ1_S"));
        Assert.Equal("test-org/m-gguf:IQ1_S: no GGUF file for quant tag IQ1_S (available: Q4_K_M, Q8_0)", e.Message);
    }

    [Fact]
    public void Several_files_download_at_once()
    {
        var rnd = new Random(9);
        byte[] Blob() { var b = new byte[40_000]; rnd.NextBytes(b); return b; }
        var files = Enumerable.Range(1, 4).ToDictionary(i => $"model-0000{i}-of-00004.safetensors", _ => Blob());
        var repo = new FakeHub.Repo();
        foreach (var (k, v) in files) repo.Files[k] = v;
        _hub.Repos["test-org/sharded"] = repo;
        _hub.ChunkDelay = TimeSpan.FromMilliseconds(20);   // each transfer takes ~200 ms
        var got = Pull("test-org/sharded");
        foreach (var (k, v) in files) Assert.Equal(v, File.ReadAllBytes(Path.Combine(got.Path, k)));
        Assert.InRange(_hub.MaxInFlight, 2, 4);
    }

    [Fact]
    public void Too_little_free_space_is_refused_before_downloading()
    {
        var locator = new ModelLocator(Options()) { FreeSpace = _ => 1000 };
        var e = Assert.Throws<HubException>(() => locator.Pull(ModelReference.Parse("test-org/tiny-qwen2"), null, _timeout.Token));
        Assert.Contains("free", e.Message);
        Assert.Contains("HF_HOME", e.Message);
        Assert.Empty(Requests("/cdn/"));
    }

    [Fact]
    public void A_full_disk_is_a_one_line_error_and_is_not_retried()
    {
        if (!File.Exists("/dev/full")) return;   // Linux: every write fails with ENOSPC
        var locator = new ModelLocator(Options()) { OpenIncomplete = (_, _) => new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 0) };
        var e = Assert.Throws<HubException>(() => locator.Pull(ModelReference.Parse("test-org/tiny-qwen2"), null, _timeout.Token));
        Assert.StartsWith("disk full while writing ", e.Message);
        Assert.Contains("HF_HOME", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(Requests("GET /").Count(l => !l.Contains("/api/")) <= 3);   // each file tried once, not Attempts times
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", Commit, "model.safetensors")));
    }

    [Fact]
    public void Hub_errors_and_cut_transfers_leave_the_model_path_absent()
    {
        // Every attempt is cut: the pull fails in one line, keeps the partial file for a later resume, links nothing.
        var o = Options() with { Attempts = 2 };
        _hub.CutAlways[WeightsSha] = 10_000;
        var locator = new ModelLocator(o);
        var e = Assert.Throws<HubException>(() => locator.Pull(ModelReference.Parse("test-org/tiny-qwen2"), null, _timeout.Token));
        Assert.Contains("run again to resume", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(2, Requests($"GET /cdn/{WeightsSha}").Count);
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", Commit, "model.safetensors")));
        byte[] part = File.ReadAllBytes(Path.Combine(RepoDir, "blobs", WeightsSha + ".incomplete"));
        Assert.InRange(part.Length, 1, 20_000);   // two cut transfers of at most 10 000 bytes each
        Assert.Equal(Weights[..part.Length], part);
    }

    private sealed class Collect(List<DownloadProgress> into) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) { lock (into) into.Add(value); }
    }
}
