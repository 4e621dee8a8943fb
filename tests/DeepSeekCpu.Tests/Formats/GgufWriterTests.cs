using DeepSeekCpu.Formats;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Formats;

public class GgufWriterTests
{
    [Fact]
    public void A_failed_write_leaves_no_partial_file_and_keeps_the_old_one()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = tmp.File("model.gguf");
        File.WriteAllText(path, "the previous, good file");
        var w = new GgufWriter().Add("general.architecture", "llama");
        w.AddTensor("t", DType.F32, [4], 16, _ => throw new IOException("disk full"));
        var e = Assert.Throws<IOException>(() => w.Write(path));
        Assert.Equal("disk full", e.Message);
        Assert.Equal("the previous, good file", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void A_complete_write_reads_back()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = tmp.File("model.gguf");
        new GgufWriter().Add("general.architecture", "llama").Add("x.count", 7u)
            .AddTensor("t", DType.F32, [2, 2], [0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64]).Write(path);
        using var g = GgufFile.Open(path);
        Assert.Equal(7L, g.GetInt("x.count"));
        Assert.Equal(new long[] { 2, 2 }, g.Tensors["t"].Shape);
        Assert.Equal(new[] { 1f, 2f, 3f, 4f }, g.Tensors["t"].AsF32().ToArray());
        Assert.Single(Directory.GetFiles(tmp.Path));
    }
}
