using System.Security.Cryptography;
using System.Text.Json;
using Xunit;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;

namespace DeepSeekCpu.Tests.Hub;

/// <summary>
/// Issue 9 point 4: a model read through symlinks loads like the files themselves. The snapshot is laid out as
/// Hugging Face's Python tools leave it: blobs/ named by sha256, snapshots/COMMIT/NAME as relative links into blobs/.
/// Before the fix the safetensors reader sized the link itself ("header length ... does not fit in a file of 65 bytes").
/// </summary>
public class SymlinkSnapshotTests
{
    /// <summary>Copies <paramref name="files"/> (name → source) into repo/blobs and links them from repo/snapshots/COMMIT.</summary>
    internal static string MakeSnapshot(string repoDir, string commit, IEnumerable<(string Name, string Source)> files)
    {
        string blobs = Path.Combine(repoDir, "blobs"), snap = Path.Combine(repoDir, "snapshots", commit);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snap);
        foreach (var (name, source) in files)
        {
            byte[] bytes = File.ReadAllBytes(source);
            string blob = Convert.ToHexStringLower(SHA256.HashData(bytes));
            File.WriteAllBytes(Path.Combine(blobs, blob), bytes);
            string link = Path.Combine(snap, name);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            string rel = Path.GetRelativePath(Path.GetDirectoryName(link)!, Path.Combine(blobs, blob));
            File.CreateSymbolicLink(link, rel);
        }
        Directory.CreateDirectory(Path.Combine(repoDir, "refs"));
        File.WriteAllText(Path.Combine(repoDir, "refs", "main"), commit);
        return snap;
    }

    [Fact]
    public void Safetensors_folder_of_relative_symlinks_loads_and_matches_the_reference()
    {
        using var tmp = TestPaths.NewTempDir();
        // A one-shard index as well, so the shard index is read through a link too.
        string index = tmp.File("index.json");
        var st = SafeTensorNames(TestPaths.Fixture("tiny-qwen2", "model.safetensors"));
        File.WriteAllText(index, JsonSerializer.Serialize(new { metadata = new { }, weight_map = st.ToDictionary(n => n, _ => "model-00001-of-00001.safetensors") }));
        string snap = MakeSnapshot(Path.Combine(tmp.Path, "models--test--tiny-qwen2"), "0123456789abcdef0123456789abcdef01234567",
        [
            ("config.json", TestPaths.Fixture("tiny-qwen2", "config.json")),
            ("model-00001-of-00001.safetensors", TestPaths.Fixture("tiny-qwen2", "model.safetensors")),
            ("model.safetensors.index.json", index),
        ]);
        Assert.NotNull(new FileInfo(Path.Combine(snap, "model-00001-of-00001.safetensors")).LinkTarget);

        var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen2"));
        using var m = ModelLoader.Load(snap, TestPaths.F32Cache);
        Engine.AssertClose(r.Logits, Engine.Prefill(m, r.Prompt), 1e-4, r.Vocab, "tiny-qwen2 through symlinks");
    }

    [Fact]
    public void Llama2c_checkpoint_and_tokenizer_through_symlinks_load()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.GetDirectoryName(TestPaths.Stories260K)!;
        string snap = MakeSnapshot(Path.Combine(tmp.Path, "models--karpathy--stories"), "c0ffee",
            [("stories260K.bin", TestPaths.Stories260K), ("tok512.bin", Path.Combine(dir, "tok512.bin"))]);
        using var direct = LocalModel.Load(TestPaths.Stories260K);
        using var linked = LocalModel.Load(Path.Combine(snap, "stories260K.bin"));
        int[] prompt = [1, 403, 407, 261];
        Assert.Equal(Engine.Prefill(direct.Model, prompt), Engine.Prefill(linked.Model, prompt));
        Assert.Equal(direct.Tokenizer.Encode("Once upon a time", false), linked.Tokenizer.Encode("Once upon a time", false));
    }

    [Fact]
    public void A_dangling_link_is_a_one_line_error_naming_the_file()
    {
        using var tmp = TestPaths.NewTempDir();
        string link = tmp.File("model.gguf");
        File.CreateSymbolicLink(link, "blobs/missing");
        var e = Assert.ThrowsAny<Exception>(() => DeepSeekCpu.Formats.GgufFile.Open(link));
        Assert.Contains("model.gguf", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    private static List<string> SafeTensorNames(string path)
    {
        using var f = DeepSeekCpu.Formats.SafeTensorsFile.Open(path);
        return f.Tensors.Keys.ToList();
    }
}

/// <summary>LocalModel.Load takes a repo id and loads the snapshot the Hugging Face cache holds for it. It reads the
/// environment (HF_HUB_CACHE, HF_HUB_OFFLINE) as applications get it, so this test sets both for its duration; only
/// names read them, and no other test passes a name to LocalModel.</summary>
[Collection("Console")]
public class LocalModelByNameTests
{
    [Fact]
    public void LocalModel_loads_a_repo_id_from_the_cache()
    {
        using var tmp = TestPaths.NewTempDir();
        string snap = SymlinkSnapshotTests.MakeSnapshot(Path.Combine(tmp.Path, "models--test-org--tiny-qwen2"), "0123456789abcdef0123456789abcdef01234567",
            [("config.json", TestPaths.Fixture("tiny-qwen2", "config.json")), ("model.safetensors", TestPaths.Fixture("tiny-qwen2", "model.safetensors"))]);
        var saved = (Environment.GetEnvironmentVariable("HF_HUB_CACHE"), Environment.GetEnvironmentVariable("HF_HUB_OFFLINE"));
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", tmp.Path);
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        // The fixture has no tokenizer, and a real one (151,665 tokens) is refused for a 96-token model: a tiny one.
        string tokenizer = tmp.File("tokenizer.json");
        File.WriteAllText(tokenizer, """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "!": 2}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}""");
        try
        {
            using var lm = LocalModel.Load("test-org/tiny-qwen2", tokenizer, TestPaths.F32Cache);
            Assert.Equal(snap, lm.Path);
            var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen2"));
            Engine.AssertClose(r.Logits, Engine.Prefill(lm.Model, r.Prompt), 1e-4, r.Vocab, "tiny-qwen2 by name");
            var e = Assert.Throws<DeepSeekCpu.Hub.HubException>(() => LocalModel.Load("test-org/absent"));
            Assert.Contains("not in the cache", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved.Item1);
            Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", saved.Item2);
        }
    }
}
