using System.Buffers.Binary;
using System.Text;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Hardening;

/// <summary>
/// Model files built as an attacker would (issue 11): each must fail with a one-line <see cref="ModelFormatException"/>
/// naming the file and the field or tensor, never with a wild read, a DivideByZeroException or an allocation sized by
/// the file, and never open a file outside the model's folder.
/// </summary>
public class ModelFileHardeningTests
{
    private static ModelFormatException Fails(Action load, string file, params string[] mustContain) =>
        Formats.MalformedFileTests.Fails(load, file, mustContain);

    private static byte[] F32Bytes(int n) => new byte[n * 4];

    // ---- GGUF tensor offsets ----

    /// <summary>A GGUF file with one F32 tensor "t" of [2, 32] whose u64 offset field is replaced by <paramref name="offset"/>.</summary>
    private static string GgufWithOffset(string path, ulong offset)
    {
        new GgufWriter().Add("general.architecture", "llama").AddTensor("t", DType.F32, [2, 32], F32Bytes(64)).Write(path);
        byte[] b = File.ReadAllBytes(path);
        // tensor info: u64 name length 1, "t", u32 n_dims 2, u64 ne[0] 32, u64 ne[1] 2, u32 type 0 (F32), u64 offset
        byte[] info = [1, 0, 0, 0, 0, 0, 0, 0, (byte)'t', 2, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        int at = b.AsSpan().IndexOf(info);
        Assert.True(at > 0, "tensor info of t not found");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + info.Length), offset);
        File.WriteAllBytes(path, b);
        return path;
    }

    [Fact]
    public void Gguf_tensor_offset_at_zero_still_reads()
    {
        // positive control for the patching helper
        using var tmp = TestPaths.NewTempDir();
        using var g = GgufFile.Open(GgufWithOffset(tmp.File("ok.gguf"), 0));
        Assert.Equal(64, g.Tensors["t"].AsF32().Length);
    }

    [Theory]
    [InlineData(0x7FFF_FFFF_FFFF_FFE0UL)]   // 2^63 - 32: dataOffset + offset wrapped around to a negative pointer
    [InlineData(0x7FFF_FFFF_FFFF_FF00UL)]
    [InlineData(0xFFFF_FFFF_FFFF_FFE0UL)]   // 2^64 - 32
    [InlineData(1UL << 40)]
    public void Gguf_tensor_offset_near_2_63_is_a_clean_error(ulong offset)
    {
        using var tmp = TestPaths.NewTempDir();
        string p = GgufWithOffset(tmp.File("offset.gguf"), offset);
        Fails(() => GgufFile.Open(p).Dispose(), p, "tensor t", "past the end");
    }

    [Fact]
    public void Gguf_tensor_too_large_for_the_file_is_a_clean_error()
    {
        // a shape whose byte count is far beyond the file (elements within int range per dimension)
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("huge.gguf");
        new GgufWriter().Add("general.architecture", "llama").AddTensor("t", DType.F32, [2, 32], F32Bytes(64)).Write(p);
        byte[] b = File.ReadAllBytes(p);
        byte[] ne = [32, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        int at = b.AsSpan().IndexOf(ne);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), int.MaxValue - 31);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 8), int.MaxValue);
        File.WriteAllBytes(p, b);
        Fails(() => GgufFile.Open(p).Dispose(), p, "tensor t");
    }

    // ---- model configuration values ----

    /// <summary>Llama GGUF metadata with one value replaced, and a token embedding (the loader never gets to the weights).</summary>
    private static string LlamaGguf(string path, string key, object value)
    {
        var meta = new Dictionary<string, object>
        {
            ["general.architecture"] = "llama",
            ["llama.block_count"] = 1u, ["llama.context_length"] = 64u, ["llama.embedding_length"] = 8u,
            ["llama.feed_forward_length"] = 16u, ["llama.attention.head_count"] = 2u, ["llama.attention.head_count_kv"] = 1u,
            ["llama.rope.freq_base"] = 10000f, ["llama.attention.layer_norm_rms_epsilon"] = 1e-5f, ["llama.vocab_size"] = 4u,
        };
        meta[key] = value;
        var w = new GgufWriter();
        foreach (var (k, v) in meta) w.Add(k, v);
        w.AddTensor("token_embd.weight", DType.F32, [4, 8], F32Bytes(32)).Write(path);
        return path;
    }

    [Theory]
    [InlineData("llama.attention.head_count", 0u)]
    [InlineData("llama.attention.head_count_kv", 0u)]
    [InlineData("llama.block_count", 0x7FFF_FFFFu)]
    [InlineData("llama.block_count", 0u)]
    [InlineData("llama.embedding_length", 0u)]
    [InlineData("llama.attention.head_count", 4_000_000_000u)]
    public void Gguf_model_sizes_out_of_range_name_file_and_key(string key, uint value)
    {
        using var tmp = TestPaths.NewTempDir();
        string p = LlamaGguf(tmp.File("sizes.gguf"), key, value);
        Fails(() => ModelLoader.OpenWeights(p).weights.Dispose(), p, key, "out of range");
    }

    [Fact]
    public void Gguf_heads_that_do_not_divide_name_both_fields()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = LlamaGguf(tmp.File("gqa.gguf"), "llama.attention.head_count_kv", 3u);
        Fails(() => ModelLoader.OpenWeights(p).weights.Dispose(), p, "num_key_value_heads");
    }

    [Theory]
    [InlineData("num_attention_heads", "0")]
    [InlineData("num_key_value_heads", "0")]
    [InlineData("num_hidden_layers", "2147483647")]
    [InlineData("vocab_size", "1000000000")]
    [InlineData("num_key_value_heads", "3")]
    public void Config_json_sizes_out_of_range_name_file_and_field(string field, string value)
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("config.json");
        var fields = new Dictionary<string, string>
        {
            ["model_type"] = "\"llama\"", ["vocab_size"] = "4", ["hidden_size"] = "8", ["intermediate_size"] = "16",
            ["num_hidden_layers"] = "1", ["num_attention_heads"] = "2", ["num_key_value_heads"] = "1",
        };
        fields[field] = value;
        File.WriteAllText(p, "{" + string.Join(", ", fields.Select(kv => $"\"{kv.Key}\": {kv.Value}")) + "}");
        Fails(() => ModelConfig.FromHfJson(p), p, field);
    }

    // ---- safetensors shard index ----

    private static string FolderWithIndex(TestPaths.TempDir tmp, string shard)
    {
        string dir = Directory.CreateDirectory(tmp.File("model")).FullName;
        TestSafetensors.WriteF32(Path.Combine(dir, "model-00001-of-00001.safetensors"), [("a", [2], [1, 2])]);
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
            "{\"metadata\": {}, \"weight_map\": {\"a\": " + System.Text.Json.JsonSerializer.Serialize(shard) + "}}");
        return dir;
    }

    [Fact]
    public void Safetensors_index_with_a_shard_beside_it_loads()
    {
        using var tmp = TestPaths.NewTempDir();
        using var w = ModelWeights.OpenSafetensorsFolder(FolderWithIndex(tmp, "model-00001-of-00001.safetensors"));
        Assert.Equal(new float[] { 1, 2 }, w.Tensors["a"].AsF32().ToArray());
    }

    [Theory]
    [InlineData("../../../../../../../../etc/passwd")]
    [InlineData("/proc/self/mem")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../x.safetensors")]
    public void Safetensors_index_cannot_name_a_file_outside_the_folder(string shard)
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = FolderWithIndex(tmp, shard);
        var e = Fails(() => ModelWeights.OpenSafetensorsFolder(dir).Dispose(), "model.safetensors.index.json", "outside the model's folder", "weight_map");
        Assert.DoesNotContain("root:", e.Message);   // nothing of /etc/passwd is echoed
    }

    [Fact]
    public void Safetensors_index_entry_that_is_not_a_string()
    {
        using var tmp = TestPaths.NewTempDir();
        string dir = Directory.CreateDirectory(tmp.File("model")).FullName;
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), """{"weight_map": {"a": 7}}""");
        Fails(() => ModelWeights.OpenSafetensorsFolder(dir).Dispose(), "model.safetensors.index.json", "weight_map[\"a\"]");
    }

    [Theory]
    [InlineData("""{"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}""", "too large")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", 8]}}""", "data_offsets")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [2], "data_offsets": [1.5, 8]}}""", "data_offsets")]
    [InlineData("""{"a": 5}""", "tensor a")]
    [InlineData("""{"__metadata__": 5}""", "__metadata__")]
    public void Safetensors_header_values_of_the_wrong_kind(string header, string mustSay)
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("bad.safetensors");
        byte[] h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        File.WriteAllBytes(p, bytes);
        Fails(() => SafeTensorsFile.Open(p).Dispose(), p, mustSay);
    }
}

/// <summary>Text from files is printed with control characters escaped and bounded in length (no terminal injection).</summary>
[Collection("Console")]
public class TerminalInjectionTests
{
    [Fact]
    public void Safe_escapes_control_characters_and_bidi_overrides()
    {
        string s = TerminalText.Safe("a\u001b]0;owned\u0007b\u001b[2Jc\u009bd\u202ee\r\nf");
        Assert.Equal("a\\x1b]0;owned\\x07b\\x1b[2Jc\\x9bd\\u202ee\\x0d\\x0af", s);
        Assert.Equal("héllo ✓ 日本", TerminalText.Safe("héllo ✓ 日本"));
    }

    [Fact]
    public void Safe_caps_the_length()
    {
        string s = TerminalText.Safe(new string('x', 5000));
        Assert.True(s.Length < 500, $"{s.Length} characters");
        Assert.EndsWith("(4600 more characters)", s);
    }

    [Fact]
    public void Cli_error_from_a_gguf_string_with_escape_sequences_prints_no_control_characters()
    {
        using var tmp = TestPaths.NewTempDir();
        string p = tmp.File("evil.gguf");
        string evil = "\u001b]0;owned\u0007\u001b[2J" + new string('A', 2000);
        new GgufWriter().Add("general.architecture", evil).AddTensor("t", DType.F32, [32], new byte[128]).Write(p);
        var (o, e) = (Console.Out, Console.Error);
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        int code;
        try { code = Commands.Execute(["info", "-m", p]); }
        finally { Console.SetOut(o); Console.SetError(e); }
        string err = se.ToString().TrimEnd('\n');
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains("\\x1b]0;owned\\x07", err);
        Assert.DoesNotContain(err, c => c < ' ');
        Assert.True(err.Length < 600, $"the error echoes {err.Length} characters");
    }
}
