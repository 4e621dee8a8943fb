using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Formats;

/// <summary>
/// LoadOptions.Memory reaches the file readers: with <see cref="WeightMemory.Anonymous"/> the weights are a private
/// copy taken at load, so a later write to the file does not show through them, while memory-mapped weights are views
/// of the file's pages and do show it (Linux keeps the unmodified pages of a mapping coherent with the file).
/// </summary>
public class LoadOptionsTests
{
    private const string Embedding = "model.embed_tokens.weight";
    private const float Marker = 1234.5f;

    [Theory]
    [InlineData("llama2c")]
    [InlineData("hf")]
    [InlineData("gguf")]
    public unsafe void Anonymous_memory_is_a_copy_and_mapped_memory_a_view(string format)
    {
        if (!OperatingSystem.IsLinux()) return;
        using var tmp = TestPaths.NewTempDir();
        string model, file;
        if (format == "llama2c")
        {
            model = file = tmp.File("stories260K.bin");
            File.Copy(TestPaths.Stories260K, model);
        }
        else
        {
            model = tmp.File("hf");
            Directory.CreateDirectory(model);
            foreach (var f in Directory.GetFiles(TestPaths.Fixture("tiny-qwen2"))) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
            file = Path.Combine(model, "model.safetensors");
            if (format == "gguf")
            {
                // the same model as GGUF, written by the engine's exporter
                var (c, w, _, _) = ModelLoader.OpenWeights(model);
                using (w)
                {
                    var writer = GgufExport.CreateWriter(c, DType.F32, "tiny", false, model);
                    GgufExport.AddTensors(writer, c, w, DType.F32);
                    model = file = tmp.File("tiny.gguf");
                    writer.Write(model);
                }
            }
        }

        // where the embedding's first value sits in the file, and what it is
        long offset; float original;
        using (var reader = (IDisposable)(format == "llama2c" ? Llama2cCheckpoint.Open(file) : format == "gguf" ? GgufFile.Open(file) : SafeTensorsFile.Open(file)))
        {
            var (tensors, mapped) = reader switch
            {
                Llama2cCheckpoint c => (c.Tensors, c.Mapped),
                GgufFile g => (g.Tensors, g.Mapped),
                SafeTensorsFile st => (st.Tensors, st.Mapped),
                _ => throw new InvalidOperationException(),
            };
            var t = tensors[format == "gguf" ? "token_embd.weight" : Embedding];
            Assert.Equal(DType.F32, t.Type);
            offset = t.Data - mapped.Pointer;
            original = *(float*)t.Data;
        }
        Assert.NotEqual(Marker, original);

        float ReadAfterWrite(WeightMemory memory)
        {
            Write(file, offset, original);
            using var m = ModelLoader.Load(model, new LoadOptions { Memory = memory });
            Write(file, offset, Marker);
            return *(float*)m.Weights.Get(Embedding).Data;
        }
        Assert.Equal(original, ReadAfterWrite(WeightMemory.Anonymous));  // a copy: unchanged
        Assert.Equal(Marker, ReadAfterWrite(WeightMemory.Mmap));         // a view: changed
    }

    private static void Write(string file, long offset, float value)
    {
        using var fs = new FileStream(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        fs.Position = offset;
        fs.Write(BitConverter.GetBytes(value));
    }
}
