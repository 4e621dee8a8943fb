using System.Text;
using Xunit;
using DeepSeekCpu.Hub;

namespace DeepSeekCpu.Tests.Hub;

public class ModelReferenceTests
{
    [Theory]
    [InlineData("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "main", null)]
    [InlineData("org/repo@v1.0", "org/repo", "v1.0", null)]
    [InlineData("org/repo@refs/pr/1", "org/repo", "refs/pr/1", null)]
    [InlineData("unsloth/DeepSeek-R1-GGUF:Q4_K_M", "unsloth/DeepSeek-R1-GGUF", "main", "Q4_K_M")]
    [InlineData("org/repo@0123456789abcdef0123456789abcdef01234567:q8_0", "org/repo", "0123456789abcdef0123456789abcdef01234567", "q8_0")]
    public void Names_parse(string text, string repo, string rev, string? tag)
    {
        Assert.True(ModelReference.TryParse(text, out var r));
        Assert.Equal(new ModelReference(repo, rev, tag), r);
        Assert.Equal(text, r.ToString());
    }

    [Theory]
    [InlineData("models/model.gguf")]          // a mistyped file stays a file: "no such file"
    [InlineData("./org/repo")]
    [InlineData("/abs/path")]
    [InlineData("stories260K.bin")]
    [InlineData("just-a-name")]
    [InlineData("a/b/c")]
    [InlineData("org/../etc")]
    [InlineData("org/repo:")]
    public void Paths_and_junk_are_not_names(string text) => Assert.False(ModelReference.TryParse(text, out _));

    [Fact]
    public void Cache_folder_name_is_huggingface_hubs() =>
        Assert.Equal("models--deepseek-ai--DeepSeek-V3", ModelReference.Parse("deepseek-ai/DeepSeek-V3").CacheFolderName);

    [Fact]
    public void A_path_that_exists_wins_over_a_name()
    {
        using var tmp = TestPaths.NewTempDir();
        var locator = new ModelLocator(new HubOptions { CacheDir = tmp.Path, Offline = true });
        string cwd = Environment.CurrentDirectory;
        Directory.CreateDirectory(Path.Combine(tmp.Path, "org", "repo"));
        Assert.Equal(Path.Combine(tmp.Path, "org", "repo"), locator.ResolvePath(Path.Combine(tmp.Path, "org", "repo")));
        Assert.Equal("missing.gguf", locator.ResolvePath("missing.gguf"));   // the loader reports it
    }

    [Fact]
    public void Environment_is_read_like_huggingface_hub()
    {
        using var tmp = TestPaths.NewTempDir();
        var env = new Dictionary<string, string> { ["HF_HOME"] = tmp.Path, ["HF_ENDPOINT"] = "http://127.0.0.1:9/", ["HF_HUB_OFFLINE"] = "1" };
        var o = HubOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(Path.Combine(tmp.Path, "hub"), o.CacheDir);
        Assert.Equal("http://127.0.0.1:9", o.Endpoint);
        Assert.True(o.Offline);
        Assert.Null(o.Token);
        File.WriteAllText(Path.Combine(tmp.Path, "token"), "hf_from_login\n");   // what `huggingface-cli login` writes
        Assert.Equal("hf_from_login", HubOptions.FromEnvironment(k => env.GetValueOrDefault(k)).Token);
        env["HF_TOKEN"] = "hf_env";
        env["HF_HUB_OFFLINE"] = "0";
        env["HF_HUB_CACHE"] = "/elsewhere";
        o = HubOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(("hf_env", false, "/elsewhere"), (o.Token, o.Offline, o.CacheDir));
        Assert.Equal(HubOptions.DefaultEndpoint, HubOptions.FromEnvironment(_ => null).Endpoint);
    }

    [Fact]
    public void Disk_full_is_recognised_from_the_errno()
    {
        Assert.True(HubException.IsDiskFull(new IOException("No space left on device", 28)));
        Assert.False(HubException.IsDiskFull(new IOException("Input/output error", 5)));
        var e = HubException.DiskFull("/cache/blobs/x.incomplete", 3L << 30, new IOException("No space left on device", 28));
        Assert.Equal("disk full while writing /cache/blobs/x.incomplete (3.00 GiB still to download); free space or point HF_HOME at a larger disk", e.Message);
    }
}

public class FileSelectionTests
{
    private static readonly string[] Safetensors =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md", ".gitattributes",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "pytorch_model.bin", "original/consolidated.00.pth", "figures/benchmark.png", "configuration_deepseek.py",
    ];

    [Fact]
    public void Safetensors_repo_takes_weights_index_config_and_tokenizer_only()
    {
        var s = FileSelection.Select("o/r", Safetensors, null);
        Assert.Equal(WeightFormat.Safetensors, s.Format);
        Assert.Equal(["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                      "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"], s.Files);
        Assert.Equal("", s.ModelPath);
    }

    private static readonly string[] Gguf =
    [
        "README.md", "DeepSeek-R1-Q2_K.gguf", "Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00003.gguf", "Q4_K_M/DeepSeek-R1-Q4_K_M-00002-of-00003.gguf",
        "Q4_K_M/DeepSeek-R1-Q4_K_M-00003-of-00003.gguf", "DeepSeek-R1-UD-IQ1_S.gguf", "DeepSeek-R1-Q4_K_S.gguf", "mmproj-F16.gguf",
    ];

    [Fact]
    public void Gguf_tag_selects_the_file_or_all_its_shards()
    {
        var s = FileSelection.Select("o/r", Gguf, null);   // several: Q4_K_M by default
        Assert.Equal(["Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00003.gguf", "Q4_K_M/DeepSeek-R1-Q4_K_M-00002-of-00003.gguf",
                      "Q4_K_M/DeepSeek-R1-Q4_K_M-00003-of-00003.gguf"], s.Files);
        Assert.Equal(s.Files[0], s.ModelPath);
        Assert.Equal(["DeepSeek-R1-Q4_K_S.gguf"], FileSelection.Select("o/r", Gguf, "Q4_K_S").Files);
        Assert.Equal(["DeepSeek-R1-UD-IQ1_S.gguf"], FileSelection.Select("o/r", Gguf, "iq1_s").Files);
        Assert.Equal(["DeepSeek-R1-Q2_K.gguf"], FileSelection.Select("o/r", Gguf, "Q2_K").Files);
        var e = Assert.Throws<HubException>(() => FileSelection.Select("o/r", Gguf, "Q4_K"));
        Assert.Equal("o/r: no GGUF file for quant tag Q4_K (available: IQ1_S, Q2_K, Q4_K_M, Q4_K_S)", e.Message);
    }

    [Fact]
    public void Without_q4_k_m_several_ggufs_need_a_tag_and_one_needs_none()
    {
        var e = Assert.Throws<HubException>(() => FileSelection.Select("o/r", ["a-Q8_0.gguf", "a-F16.gguf"], null));
        Assert.Equal("o/r: several GGUF files and none is Q4_K_M; name one as o/r:TAG (available: F16, Q8_0)", e.Message);
        Assert.Equal(["a-Q8_0.gguf"], FileSelection.Select("o/r", ["a-Q8_0.gguf", "README.md"], null).Files);
        Assert.Contains("no .gguf files", Assert.Throws<HubException>(() => FileSelection.Select("o/r", Safetensors, "Q8_0")).Message);
        Assert.Contains("no safetensors or GGUF weights", Assert.Throws<HubException>(() => FileSelection.Select("o/r", ["pytorch_model.bin", "config.json"], null)).Message);
    }
}
