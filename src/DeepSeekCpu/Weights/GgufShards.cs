using System.Text.RegularExpressions;
using DeepSeekCpu.Formats;

namespace DeepSeekCpu.Weights;

/// <summary>
/// A GGUF model split into shards by llama.cpp's gguf-split (examples/gguf-split): files named
/// <c>PREFIX-00001-of-0000N.gguf</c>, each a complete GGUF file with the keys <c>split.no</c> (u16, 0-based),
/// <c>split.count</c> (u16) and, in the first, <c>split.tensors.count</c> (i32, the tensors of all shards); the model's
/// metadata is in the first shard. Opened from the first shard's path, each shard memory-mapped on its own; a file
/// that is not split opens as one shard.
/// </summary>
internal static partial class GgufShards
{
    [GeneratedRegex(@"^(.*)-(\d{5})-of-(\d{5})\.gguf$", RegexOptions.IgnoreCase)]
    private static partial Regex ShardName();

    /// <summary>The shard file names of a model split in <paramref name="count"/> files with this prefix (what gguf-split writes).</summary>
    public static string ShardPath(string prefix, int index, int count) => $"{prefix}-{index + 1:D5}-of-{count:D5}.gguf";

    /// <summary>The shards in order, the first being <paramref name="path"/>; disposes what it opened if one is missing or does not match.</summary>
    public static List<GgufFile> Open(string path, WeightMemory memory = WeightMemory.Mmap)
    {
        var first = GgufFile.Open(path, memory);
        var shards = new List<GgufFile> { first };
        try
        {
            if (first.GetInt("split.count") is not long count || count <= 1) return shards;
            if (first.GetInt("split.no") is long no && no != 0)
                throw ModelFormatException.In(path, $"split.no = {no}: this is shard {no + 1} of {count}; open the first shard (…-00001-of-{count:D5}.gguf)");
            var m = ShardName().Match(path);
            if (!m.Success || long.Parse(m.Groups[3].Value) != count)
                throw ModelFormatException.In(path, $"split.count = {count}, but the file is not named PREFIX-00001-of-{count:D5}.gguf, so its shards cannot be found");
            for (int i = 1; i < count; i++)
            {
                string p = ShardPath(m.Groups[1].Value, i, (int)count);
                if (!File.Exists(p)) throw new ModelFormatException($"{p}: shard {i + 1} of {count} is missing");
                var s = GgufFile.Open(p, memory);
                shards.Add(s);
                if (s.GetInt("split.no") != i || s.GetInt("split.count") != count)
                    throw ModelFormatException.In(p, $"split.no = {s.GetInt("split.no")?.ToString() ?? "(missing)"}, split.count = {s.GetInt("split.count")?.ToString() ?? "(missing)"}, expected {i} and {count} (a shard of another split?)");
            }
            long total = shards.Sum(s => (long)s.Tensors.Count);
            if (first.GetInt("split.tensors.count") is long expected && expected != total)
                throw ModelFormatException.In(path, $"split.tensors.count = {expected}, but the {count} shards hold {total} tensors");
            return shards;
        }
        catch
        {
            foreach (var s in shards) s.Dispose();
            throw;
        }
    }

    /// <summary>The tensors of all shards by name; a name in two shards is an error naming the second.</summary>
    public static Dictionary<string, TensorView> Tensors(IReadOnlyList<GgufFile> shards)
    {
        var all = new Dictionary<string, TensorView>();
        foreach (var s in shards)
            foreach (var (name, t) in s.Tensors)
                if (!all.TryAdd(name, t)) throw ModelFormatException.In(s.Path, $"tensor {name} is also in an earlier shard");
        return all;
    }
}
