using System.Buffers;
using System.Text.Json;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>
/// Writes a safetensors file (huggingface/safetensors README, "Format"): u64 header length, the JSON header
/// { name: { dtype, shape, data_offsets } }, padded with spaces to a multiple of 8 bytes, then the tensors' bytes in order.
/// Tensor bytes are produced on demand so multi-gigabyte files stream to disk.
/// </summary>
internal sealed class SafeTensorsWriter
{
    private readonly List<(string name, string dtype, long[] shape, long bytes, Action<Stream> write)> _tensors = [];

    public SafeTensorsWriter Add(string name, DType type, long[] shape, long bytes, Action<Stream> write)
    {
        string dtype = type switch
        {
            DType.F32 => "F32", DType.F16 => "F16", DType.BF16 => "BF16", DType.F8_E4M3 => "F8_E4M3",
            _ => throw new ArgumentException($"safetensors cannot hold {type} tensors (tensor {name})"),
        };
        long elements = 1; foreach (var d in shape) elements *= d;
        if (elements * type.BlockBytes() != bytes) throw new ArgumentException($"tensor {name}: {bytes} bytes, expected {elements * type.BlockBytes()}");
        _tensors.Add((name, dtype, shape, bytes, write));
        return this;
    }

    public void Write(string path)
    {
        // Written with Utf8JsonWriter, not JsonSerializer over anonymous objects (reflection: trimming/AOT warnings)
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            long offset = 0;
            foreach (var t in _tensors)
            {
                writer.WriteStartObject(t.name);
                writer.WriteString("dtype", t.dtype);
                writer.WriteStartArray("shape");
                foreach (long d in t.shape) writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + t.bytes);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += t.bytes;
            }
            writer.WriteEndObject();
        }
        var json = buffer.WrittenSpan;
        int padded = (json.Length + 7) / 8 * 8;
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        fs.Write(BitConverter.GetBytes((ulong)padded));
        fs.Write(json);
        for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
        foreach (var t in _tensors)
        {
            long before = fs.Position;
            t.write(fs);
            if (fs.Position - before != t.bytes) throw new InvalidOperationException($"tensor {t.name}: writer produced {fs.Position - before} bytes, expected {t.bytes}");
        }
    }
}
