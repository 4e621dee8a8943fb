using Xunit;
using System.Buffers.Binary;
using System.Text;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Tests.Formats;

/// <summary>
/// Broken files must fail with a <see cref="ModelFormatException"/> whose one-line message names the file and
/// says what was expected, never with an IndexOutOfRange / AccessViolation or a silent wrong load.
/// </summary>
public class MalformedFileTests
{
    internal static ModelFormatException Fails(Action load, string file, params string[] mustContain)
    {
        var e = Assert.Throws<ModelFormatException>(load);
        Assert.Contains(file, e.Message);
        foreach (var s in mustContain) Assert.Contains(s, e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    private static void CopyHfFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    // ---- safetensors ----

    private static string WriteSmallSafetensors(string path, Func<string, string>? edit = null)
    {
        TestSafetensors.WriteF32(path, [("a", [2, 3], [1, 2, 3, 4, 5, 6]), ("b", [4], [7, 8, 9, 10])], edit);
        return path;
    }

    [Fact]
    public void Safetensors_valid_small_file_reads_back()
    {
        // Positive control for the writer used by the malformed cases below.
        using var tmp = TestPaths.NewTempDir();
        using var f = SafeTensorsFile.Open(WriteSmallSafetensors(tmp.File("ok.safetensors")));
        Assert.Equal(new float[] { 7, 8, 9, 10 }, f.Tensors["b"].AsF32().ToArray());
        Assert.Equal(new long[] { 2, 3 }, f.Tensors["a"].Shape);
    }

    [Fact]
    public void Safetensors_cut_inside_the_header()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallSafetensors(tmp.File("cut-header.safetensors"));
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(p));
        using (var fs = new FileStream(p, FileMode.Open)) fs.SetLength(8 + headerLen / 2);
        Fails(() => SafeTensorsFile.Open(p), p, "header");
    }

    [Fact]
    public void Safetensors_shorter_than_the_length_prefix()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("tiny.safetensors");
        File.WriteAllBytes(p, [1, 2, 3]);
        Fails(() => SafeTensorsFile.Open(p), p, "8-byte");
    }

    [Fact]
    public void Safetensors_cut_inside_the_data()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallSafetensors(tmp.File("cut-data.safetensors"));
        using (var fs = new FileStream(p, FileMode.Open)) fs.SetLength(fs.Length - 6);
        Fails(() => SafeTensorsFile.Open(p), p, "tensor b", "truncated");
    }

    [Fact]
    public void Safetensors_data_offsets_that_do_not_match_the_shape()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallSafetensors(tmp.File("bad-offsets.safetensors"), h => h.Replace("\"data_offsets\":[0,24]", "\"data_offsets\":[0,20]"));
        Fails(() => SafeTensorsFile.Open(p), p, "tensor a", "data_offsets", "expected 24");
    }

    [Fact]
    public void Safetensors_data_offsets_past_the_end()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallSafetensors(tmp.File("far-offsets.safetensors"), h => h.Replace("\"data_offsets\":[24,40]", "\"data_offsets\":[1000,1016]"));
        Fails(() => SafeTensorsFile.Open(p), p, "tensor b", "outside");
    }

    [Fact]
    public void Safetensors_model_folder_with_a_truncated_weight_file()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.Combine(tmp.Path, "m");
        CopyHfFolder(TestPaths.Fixture("tiny-qwen2"), dir);
        string st = Path.Combine(dir, "model.safetensors");
        using (var fs = new FileStream(st, FileMode.Open)) fs.SetLength(fs.Length - 100);
        Fails(() => ModelLoader.Load(dir), st, "truncated");
    }

    // ---- GGUF ----

    private static string WriteSmallGguf(string path)
    {
        new GgufWriter().Add("general.architecture", "llama")
            .AddTensor("t", DType.F32, [2, 32], TinyGguf.Encode(Enumerable.Range(0, 64).Select(i => (float)i).ToArray(), DType.F32))
            .Write(path);
        return path;
    }

    [Fact]
    public void Gguf_valid_small_file_reads_back()
    {
        using var tmp = TestPaths.NewTempDir();
        using var g = GgufFile.Open(WriteSmallGguf(tmp.File("ok.gguf")));
        Assert.Equal("llama", g.GetString("general.architecture"));
        Assert.Equal(63f, g.Tensors["t"].AsF32()[63]);
    }

    [Fact]
    public void Gguf_bad_magic()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("magic.gguf"));
        var b = File.ReadAllBytes(p); b[0] = (byte)'X'; File.WriteAllBytes(p, b);
        Fails(() => GgufFile.Open(p), p, "GGUF", "magic");
        Fails(() => ModelLoader.Load(p), p, "GGUF");
    }

    [Fact]
    public void Gguf_version_1_is_rejected()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("v1.gguf"));
        var b = File.ReadAllBytes(p); BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 1); File.WriteAllBytes(p, b);
        Fails(() => GgufFile.Open(p), p, "version 1", "expected 2 or 3");
    }

    [Fact]
    public void Gguf_truncated_tensor_data()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("cut.gguf"));
        using (var fs = new FileStream(p, FileMode.Open)) fs.SetLength(fs.Length - 64);
        Fails(() => GgufFile.Open(p), p, "tensor t", "truncated");
    }

    [Fact]
    public void Gguf_truncated_inside_the_metadata()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("cut-meta.gguf"));
        using (var fs = new FileStream(p, FileMode.Open)) fs.SetLength(40);
        Fails(() => GgufFile.Open(p), p, "truncated");
    }

    [Fact]
    public void Gguf_unknown_ggml_type()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("type.gguf"));
        var b = File.ReadAllBytes(p);
        // header 24 + key/value "general.architecture" (8+20, type 4, 8+5) + tensor name (8+1) + n_dims 4 + ne 2x8 → type
        int at = 24 + (8 + 20) + 4 + (8 + 5) + (8 + 1) + 4 + 16;
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)));   // F32 before patching
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), 99);
        File.WriteAllBytes(p, b);
        Fails(() => GgufFile.Open(p), p, "tensor t", "ggml type 99");
    }

    [Fact]
    public void Gguf_llama_file_missing_a_required_key_names_the_key()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = WriteSmallGguf(tmp.File("nokeys.gguf"));
        Fails(() => ModelLoader.Load(p), p, "llama.block_count");
    }

    // ---- llama2.c ----

    [Fact]
    public void Llama2c_truncated_checkpoint()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("stories-cut.bin");
        var b = File.ReadAllBytes(TestPaths.Stories260K);
        File.WriteAllBytes(p, b.AsSpan(0, b.Length / 2).ToArray());
        Fails(() => ModelLoader.Load(p), p, "truncated");
    }

    [Fact]
    public void Llama2c_file_shorter_than_the_header()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("short.bin");
        File.WriteAllBytes(p, new byte[12]);
        Fails(() => ModelLoader.Load(p), p, "28-byte header");
    }

    [Fact]
    public void Llama2c_header_with_zero_heads()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("zero-heads.bin");
        var b = File.ReadAllBytes(TestPaths.Stories260K);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(12), 0);   // n_heads
        File.WriteAllBytes(p, b);
        Fails(() => ModelLoader.Load(p), p, "n_heads = 0");
    }

    [Fact]
    public void Llama2c_header_that_describes_a_different_size()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("wrong-layers.bin");
        var b = File.ReadAllBytes(TestPaths.Stories260K);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(8), 4);   // n_layers 5 → 4: the file is now too long
        File.WriteAllBytes(p, b);
        Fails(() => ModelLoader.Load(p), p, "header");
    }

    [Fact]
    public void Llama2c_text_file_is_not_a_checkpoint()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("notes.bin");
        File.WriteAllText(p, "this is not a model, just some text that is long enough to fill a header");
        Fails(() => ModelLoader.Load(p), p, "expected");
    }

    // ---- config.json ----

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("vocab_size")]
    [InlineData("model_type")]
    public void Config_missing_a_required_field_names_it(string field)
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.Combine(tmp.Path, "m");
        CopyHfFolder(TestPaths.Fixture("tiny-qwen2"), dir);
        string cfg = Path.Combine(dir, "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(cfg))!.AsObject();
        Assert.True(node.Remove(field));
        File.WriteAllText(cfg, node.ToJsonString());
        Fails(() => ModelLoader.Load(dir), cfg, $"\"{field}\"");
    }

    [Fact]
    public void Config_with_unknown_model_type_lists_the_supported_ones()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.Combine(tmp.Path, "m");
        CopyHfFolder(TestPaths.Fixture("tiny-llama3"), dir);
        string cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""));
        Fails(() => ModelLoader.Load(dir), cfg, "mistral", "llama", "qwen2");
    }

    [Fact]
    public void Config_that_is_not_json()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.Combine(tmp.Path, "m");
        CopyHfFolder(TestPaths.Fixture("tiny-qwen2"), dir);
        string cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, "{ \"model_type\": \"qwen2\", ");
        Fails(() => ModelLoader.Load(dir), cfg, "JSON");
    }

    [Fact]
    public void Safetensors_tensor_with_the_wrong_shape_names_tensor_and_expected_shape()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Path.Combine(tmp.Path, "m");
        CopyHfFolder(TestPaths.Fixture("tiny-qwen2"), dir);
        string cfg = Path.Combine(dir, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"));
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(dir));
        Assert.Contains("mlp.gate_proj.weight", e.Message);
        Assert.Contains("[48, 32]", e.Message);
    }
}
