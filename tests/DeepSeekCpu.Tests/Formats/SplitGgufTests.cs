using DeepSeekCpu.Formats;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.DeepSeek;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Formats;

/// <summary>
/// Split GGUF models as llama.cpp's gguf-split writes them (<see cref="SplitGgufWriter"/>): they open from the first
/// shard and give the logits of the unsplit file; a missing, foreign or wrongly counted shard is a one-line error
/// naming the file.
/// </summary>
public class SplitGgufTests
{
    [Theory]
    [InlineData("tiny-qwen2", 3)]
    [InlineData("deepseek-v3-tiny", 2)]
    public void A_split_model_opens_from_its_first_shard_with_the_logits_of_the_single_file(string name, int count)
    {
        using var tmp = TestPaths.NewTempDir();
        string single = name == "deepseek-v3-tiny"
            ? DeepSeekGgufTests.WriteGguf(DeepSeekGgufTests.FixtureSpec, DeepSeekGgufTests.ReadFixtureTensors(), splitKvB: false, q8: false)
            : TinyGguf.Convert(TestPaths.Fixture(name), DType.F32, tmp.File(name + ".gguf"));
        var shards = SplitGgufWriter.Split(single, tmp.File(name), count);
        Assert.Equal(count, shards.Length);
        Assert.EndsWith($"-00001-of-{count:D5}.gguf", shards[0]);

        using var one = ModelLoader.Load(single, TestPaths.F32Cache);
        using var split = ModelLoader.Load(shards[0], TestPaths.F32Cache);
        Assert.Equal(one.Weights.Tensors.Count, split.Weights.Tensors.Count);
        Assert.Equal(count, split.Weights.Tensors.Values.Select(t => t.File).Distinct().Count());    // each shard mapped
        int[] tokens = [1, 5, 9, 2, 7, 3];
        Assert.Equal(Engine.Prefill(one, tokens), Engine.Prefill(split, tokens));
    }

    [Fact]
    public void A_missing_or_foreign_shard_or_a_later_shard_is_a_one_line_error_naming_the_file()
    {
        using var tmp = TestPaths.NewTempDir();
        string single = TinyGguf.Convert(TestPaths.Fixture("tiny-qwen2"), DType.F32, tmp.File("m.gguf"));
        var shards = SplitGgufWriter.Split(single, tmp.File("m"), 3);

        Fails(() => ModelLoader.Load(shards[1]), shards[1], "split.no = 1", "first shard");

        File.Move(shards[2], shards[2] + ".away");
        Fails(() => ModelLoader.Load(shards[0]), shards[2], "shard 3 of 3 is missing");
        File.Move(shards[2] + ".away", shards[2]);

        // shard 2 replaced by a shard of a 2-way split of the same model
        var other = SplitGgufWriter.Split(single, tmp.File("o"), 2);
        File.Copy(other[1], shards[1], overwrite: true);
        Fails(() => ModelLoader.Load(shards[0]), shards[1], "split.no = 1, split.count = 2, expected 1 and 3");

        // a first shard renamed out of the PREFIX-00001-of-0000N pattern
        string renamed = tmp.File("renamed.gguf");
        File.Copy(other[0], renamed);
        Fails(() => ModelLoader.Load(renamed), renamed, "split.count = 2");
    }

    [Fact]
    public void A_wrong_total_tensor_count_is_an_error()
    {
        using var tmp = TestPaths.NewTempDir();
        string single = TinyGguf.Convert(TestPaths.Fixture("tiny-qwen2"), DType.F32, tmp.File("m.gguf"));
        var shards = SplitGgufWriter.Split(single, tmp.File("m"), 2, tensorsCountDelta: 1);
        Fails(() => ModelLoader.Load(shards[0]), shards[0], "split.tensors.count");
    }

    private static void Fails(Func<object> open, string file, params string[] parts)
    {
        var e = Assert.Throws<ModelFormatException>(() => { using var _ = (IDisposable)open(); });
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith(file + ":", e.Message);
        foreach (var p in parts) Assert.Contains(p, e.Message);
    }
}

/// <summary>
/// Splits a GGUF file the way llama.cpp's gguf-split --split-max-tensors does: tensors in file order spread over
/// <c>count</c> shards named PREFIX-0000i-of-0000N.gguf; every shard has split.no (u16) and split.count (u16), the first
/// also split.tensors.count (i32) and all the model's metadata.
/// </summary>
public static class SplitGgufWriter
{
    public static unsafe string[] Split(string input, string prefix, int count, int tensorsCountDelta = 0)
    {
        using var g = GgufFile.Open(input);
        var names = g.TensorOrder;
        int per = (names.Count + count - 1) / count;
        var paths = new string[count];
        for (int i = 0; i < count; i++)
        {
            var w = new GgufWriter { Alignment = g.Alignment };
            if (i == 0)
                foreach (var (k, v) in g.Metadata)
                    if (k != "general.alignment") w.Add(k, v);
            w.Add("split.no", (ushort)i).Add("split.count", (ushort)count);
            if (i == 0) w.Add("split.tensors.count", names.Count + tensorsCountDelta);
            foreach (var name in names.Skip(i * per).Take(per))
            {
                var t = g.Tensors[name];
                w.AddTensor(name, t.Type, t.Shape, t.Bytes.ToArray());
            }
            w.Write(paths[i] = GgufShards.ShardPath(prefix, i, count));
        }
        return paths;
    }
}
