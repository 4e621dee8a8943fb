using System.Text;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>
/// Writes a GGUF v3 file (ggml/docs/gguf.md) that llama.cpp's readers accept. Metadata value types follow the
/// boxed .NET type: string, bool, byte (u8), ushort (u16), int (i32), uint (u32), long (i64), ulong (u64), float (f32), double (f64),
/// and arrays string[], int[], uint[], long[], float[], bool[]. Tensor shapes are outermost first (reversed on disk).
/// </summary>
internal sealed class GgufWriter
{
    private readonly List<(string key, object value)> _meta = [];
    private readonly List<(string name, DType type, long[] shape, Action<Stream> write, long bytes)> _tensors = [];
    public int Alignment { get; init; } = 32;

    public GgufWriter Add(string key, object value) { _meta.Add((key, value)); return this; }

    /// <summary>The tensor data to be written, in bytes (for a front end's progress).</summary>
    public long TensorBytes => _tensors.Sum(t => t.bytes);

    public GgufWriter AddTensor(string name, DType type, long[] shape, byte[] data)
        => AddTensor(name, type, shape, data.LongLength, s => s.Write(data));

    /// <summary>Adds a tensor whose bytes are produced on demand (so a large model streams to disk).</summary>
    public GgufWriter AddTensor(string name, DType type, long[] shape, long bytes, Action<Stream> write)
    {
        long elements = 1; foreach (var d in shape) elements *= d;
        if (type.ByteCount(elements) != bytes) throw new ArgumentException($"tensor {name}: {bytes} bytes, expected {type.ByteCount(elements)}");
        _tensors.Add((name, type, shape, write, bytes));
        return this;
    }

    /// <summary>
    /// Writes the file. It is written under "PATH.partial" and renamed when complete, so a failure (a tensor producer
    /// throwing, a full disk) never leaves a truncated file, or replaces a good one, under <paramref name="path"/>.
    /// </summary>
    public void Write(string path)
    {
        string partial = path + ".partial";
        try
        {
            WriteTo(partial);
            File.Move(partial, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(partial); } catch (IOException) { }
            throw;
        }
    }

    private void WriteTo(string path)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        bool hasAlignment = _meta.Any(m => m.key == "general.alignment");
        w.Write((ulong)(_meta.Count + (Alignment != 32 && !hasAlignment ? 1 : 0)));
        foreach (var (k, v) in _meta) { Str(w, k); Value(w, v); }
        if (Alignment != 32 && !hasAlignment) { Str(w, "general.alignment"); Value(w, (uint)Alignment); }
        long offset = 0;
        var offsets = new List<long>();
        foreach (var t in _tensors)
        {
            Str(w, t.name);
            w.Write((uint)t.shape.Length);
            for (int d = t.shape.Length - 1; d >= 0; d--) w.Write((ulong)t.shape[d]);
            w.Write((uint)t.type);
            w.Write((ulong)offset);
            offsets.Add(offset);
            offset = Align(offset + t.bytes);
        }
        w.Flush();
        Pad(fs, Align(fs.Position) - fs.Position);
        long dataStart = fs.Position;
        for (int i = 0; i < _tensors.Count; i++)
        {
            Pad(fs, dataStart + offsets[i] - fs.Position);
            long before = fs.Position;
            _tensors[i].write(fs);
            if (fs.Position - before != _tensors[i].bytes) throw new InvalidOperationException($"tensor {_tensors[i].name}: writer produced {fs.Position - before} bytes, expected {_tensors[i].bytes}");
        }
        Pad(fs, Align(fs.Position) - fs.Position);
    }

    private long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(Stream s, long n) { for (long i = 0; i < n; i++) s.WriteByte(0); }

    private static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length); w.Write(b);
    }

    private static void Value(BinaryWriter w, object v)
    {
        switch (v)
        {
            case byte x: w.Write(0u); w.Write(x); break;
            case ushort x: w.Write(2u); w.Write(x); break;
            case uint x: w.Write(4u); w.Write(x); break;
            case int x: w.Write(5u); w.Write(x); break;
            case float x: w.Write(6u); w.Write(x); break;
            case bool x: w.Write(7u); w.Write((byte)(x ? 1 : 0)); break;
            case string x: w.Write(8u); Str(w, x); break;
            case ulong x: w.Write(10u); w.Write(x); break;
            case long x: w.Write(11u); w.Write(x); break;
            case double x: w.Write(12u); w.Write(x); break;
            case string[] a: w.Write(9u); w.Write(8u); w.Write((ulong)a.Length); foreach (var s in a) Str(w, s); break;
            case int[] a: w.Write(9u); w.Write(5u); w.Write((ulong)a.Length); foreach (var x in a) w.Write(x); break;
            case uint[] a: w.Write(9u); w.Write(4u); w.Write((ulong)a.Length); foreach (var x in a) w.Write(x); break;
            case long[] a: w.Write(9u); w.Write(11u); w.Write((ulong)a.Length); foreach (var x in a) w.Write(x); break;
            case float[] a: w.Write(9u); w.Write(6u); w.Write((ulong)a.Length); foreach (var x in a) w.Write(x); break;
            case bool[] a: w.Write(9u); w.Write(7u); w.Write((ulong)a.Length); foreach (var x in a) w.Write((byte)(x ? 1 : 0)); break;
            default: throw new ArgumentException($"unsupported GGUF metadata value type {v.GetType()}");
        }
    }
}
