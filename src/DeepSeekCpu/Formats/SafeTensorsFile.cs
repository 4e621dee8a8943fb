using System.Buffers.Binary;
using System.Text.Json;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>
/// Reader for Hugging Face safetensors (huggingface/safetensors README, "Format"):
/// u64 little-endian header length N, N bytes of JSON { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {...} },
/// then the data; offsets are relative to the first byte after the header.
/// </summary>
internal sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly MappedFile _file;

    /// <summary>The file's memory.</summary>
    public MappedFile Mapped => _file;
    public string Path => _file.Path;
    public IReadOnlyDictionary<string, TensorView> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(MappedFile file, Dictionary<string, TensorView> tensors, Dictionary<string, string> metadata)
    {
        _file = file; Tensors = tensors; Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path, WeightMemory memory = WeightMemory.Mmap)
    {
        var file = MappedFile.Open(path, memory);
        try { return Parse(file); }
        catch (Exception e) when (JsonFile.IsReadError(e)) { file.Dispose(); throw new ModelFormatException(JsonFile.ReadErrorText(path, e)); }
        catch { file.Dispose(); throw; }
    }

    private static SafeTensorsFile Parse(MappedFile file)
    {
        string p = file.Path;
        if (file.Length < 8) throw ModelFormatException.In(p, $"expected a safetensors file (8-byte header length), but it has {file.Length} bytes");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file.Span(0, 8));
        if (n > 100_000_000 || 8 + (long)n > file.Length)
            throw ModelFormatException.In(p, $"safetensors header length {n} does not fit in a file of {file.Length} bytes (truncated or not safetensors)");
        long dataStart = 8 + (long)n;
        long dataLength = file.Length - dataStart;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(file.Span(8, (long)n).ToArray()); }
        catch (JsonException e) { throw ModelFormatException.In(p, $"safetensors header is not valid JSON ({e.Message.Split('\n')[0]})"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw ModelFormatException.In(p, "safetensors header must be a JSON object");

        var tensors = new Dictionary<string, TensorView>();
        var metadata = new Dictionary<string, string>();
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw ModelFormatException.In(p, "\"__metadata__\" must be a JSON object");
                foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.ToString();
                continue;
            }
            var t = prop.Value;
            string name = prop.Name;
            if (t.ValueKind != JsonValueKind.Object) throw ModelFormatException.In(p, $"tensor {name}: expected an object with dtype, shape and data_offsets");
            if (!t.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
                throw ModelFormatException.In(p, $"tensor {name}: missing \"dtype\"");
            DType type;
            try { type = DTypeInfo.FromSafetensors(dt.GetString()!); }
            catch (NotSupportedException e) { throw ModelFormatException.In(p, $"tensor {name}: unsupported {e.Message}"); }
            if (!t.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
                throw ModelFormatException.In(p, $"tensor {name}: missing \"shape\" array");
            var shape = new long[sh.GetArrayLength()];
            int i = 0;
            foreach (var d in sh.EnumerateArray())
            {
                if (!d.TryGetInt64(out shape[i]) || shape[i] < 0) throw ModelFormatException.In(p, $"tensor {name}: shape entries must be non-negative integers");
                i++;
            }
            if (!t.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
                throw ModelFormatException.In(p, $"tensor {name}: missing \"data_offsets\" [begin, end]");
            long begin = 0, end = 0;
            if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
                || !off[0].TryGetInt64(out begin) || !off[1].TryGetInt64(out end) || begin < 0 || end < begin)
                throw ModelFormatException.In(p, $"tensor {name}: data_offsets must be two integers 0 <= begin <= end");
            // checked: the shape comes from the file, and a product that wraps around could match a small span
            long elements = 1, expected;
            try { foreach (var d in shape) elements = checked(elements * d); expected = checked(elements * type.BlockBytes()); }
            catch (OverflowException) { throw ModelFormatException.In(p, $"tensor {name}: shape [{string.Join(", ", shape)}] is too large"); }
            if (end - begin != expected)
                throw ModelFormatException.In(p, $"tensor {name}: data_offsets span {end - begin} bytes, expected {expected} for {type} {string.Join("x", shape)}");
            if (begin < 0 || end > dataLength)
                throw ModelFormatException.In(p, $"tensor {name}: data [{begin}, {end}) lies outside the file's {dataLength} data bytes (truncated?)");
            tensors[name] = new TensorView(name, type, shape, file.Pointer + dataStart + begin, expected, p);
        }
        return new SafeTensorsFile(file, tensors, metadata);
    }

    public void Dispose() => _file.Dispose();
}
