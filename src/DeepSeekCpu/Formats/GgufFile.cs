using System.Buffers.Binary;
using System.Text;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Formats;

/// <summary>
/// Reader for llama.cpp's GGUF container, versions 2 and 3 (ggml/docs/gguf.md):
/// "GGUF" magic, u32 version, u64 tensor count, u64 metadata count; metadata key/value pairs; tensor infos
/// (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml_type, u64 offset); padding to
/// <c>general.alignment</c> (default 32); the tensor data, each tensor at its offset from the data start.
/// Metadata values are boxed as: string; long for every integer type; float / double; bool; arrays as
/// string[], int[] (8..32-bit integers), long[] (64-bit), float[], double[], bool[].
/// </summary>
internal sealed unsafe partial class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    private readonly MappedFile _file;

    /// <summary>The file's memory.</summary>
    public MappedFile Mapped => _file;
    public string Path => _file.Path;
    public uint Version { get; }
    public IReadOnlyDictionary<string, object> Metadata { get; }
    public IReadOnlyDictionary<string, TensorView> Tensors { get; }
    /// <summary>Tensor names in file order.</summary>
    public IReadOnlyList<string> TensorOrder { get; }
    public long DataOffset { get; }
    public int Alignment { get; }

    private GgufFile(MappedFile file, uint version, Dictionary<string, object> meta, Dictionary<string, TensorView> tensors, List<string> order, long dataOffset, int alignment)
    {
        _file = file; Version = version; Metadata = meta; Tensors = tensors; TensorOrder = order; DataOffset = dataOffset; Alignment = alignment;
    }

    public static GgufFile Open(string path, WeightMemory memory = WeightMemory.Mmap)
    {
        var file = MappedFile.Open(path, memory);
        try { return Parse(file); }
        catch { file.Dispose(); throw; }
    }

    public static bool HasMagic(string path)
    {
        using var fs = File.OpenRead(path);
        Span<byte> b = stackalloc byte[4];
        return fs.Read(b) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(b) == Magic;
    }

    private static GgufFile Parse(MappedFile file)
    {
        var r = new Reader(file);
        if (file.Length < 24 || r.U32() != Magic) throw ModelFormatException.In(file.Path, "not a GGUF file (expected magic \"GGUF\" and a 24-byte header)");
        uint version = r.U32();
        if (version is not (2 or 3)) throw ModelFormatException.In(file.Path, $"GGUF version {version} is not supported (expected 2 or 3)");
        ulong tensorCount = r.U64(), kvCount = r.U64();
        if (tensorCount > 1_000_000 || kvCount > 1_000_000)
            throw ModelFormatException.In(file.Path, $"implausible GGUF counts: {tensorCount} tensors, {kvCount} metadata entries");

        var meta = new Dictionary<string, object>();
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.Str("metadata key");
            uint type = r.U32();
            meta[key] = r.Value(type, key);
        }
        int alignment = 32;
        if (meta.TryGetValue("general.alignment", out var al))
        {
            alignment = al is long a && a > 0 && (a & (a - 1)) == 0 ? (int)a
                : throw ModelFormatException.In(file.Path, $"general.alignment = {al}, expected a power of two");
        }

        var infos = new List<(string name, long[] shape, DType type, ulong offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = r.Str("tensor name");
            uint nd = r.U32();
            if (nd is 0 or > 4) throw ModelFormatException.In(file.Path, $"tensor {name}: {nd} dimensions (expected 1..4)");
            var ne = new long[nd];
            for (int d = 0; d < nd; d++)
            {
                ulong v = r.U64();
                if (v > int.MaxValue) throw ModelFormatException.In(file.Path, $"tensor {name}: dimension {d} is {v} (expected at most {int.MaxValue})");
                ne[d] = (long)v;
            }
            uint t = r.U32();
            if (!DTypeInfo.IsKnownGguf(t)) throw ModelFormatException.In(file.Path, $"tensor {name}: unknown ggml type {t}");
            ulong off = r.U64();
            Array.Reverse(ne); // GGUF lists ne innermost first; we keep shapes outermost first
            infos.Add((name, ne, (DType)t, off));
        }
        long dataOffset = (r.Position + alignment - 1) / alignment * alignment;
        var tensors = new Dictionary<string, TensorView>();
        var order = new List<string>();
        foreach (var (name, shape, type, off) in infos)
        {
            long elements = 1;
            try { foreach (var d in shape) elements = checked(elements * d); }
            catch (OverflowException) { throw ModelFormatException.In(file.Path, $"tensor {name}: shape [{string.Join(", ", shape)}] is too large"); }
            if (shape[^1] % type.BlockSize() != 0)
                throw ModelFormatException.In(file.Path, $"tensor {name}: row length {shape[^1]} is not a multiple of the {type} block size {type.BlockSize()}");
            if (off % (ulong)alignment != 0) throw ModelFormatException.In(file.Path, $"tensor {name}: offset {off} is not aligned to {alignment}");
            // The offset and size come from the file: compare them with the data section's length before adding, so a
            // value near 2^63 cannot wrap around to a small pointer that passes the end-of-file check.
            long dataLength = file.Length - dataOffset;
            if (elements / type.BlockSize() > Math.Max(dataLength, 0) / type.BlockBytes() || off > (ulong)Math.Max(dataLength, 0))
                throw ModelFormatException.In(file.Path, $"tensor {name}: offset {off} and shape [{string.Join(", ", shape)}] lie past the end of the file ({file.Length} bytes; truncated?)");
            long bytes = type.ByteCount(elements);
            long start = dataOffset + (long)off;
            if (bytes > dataLength - (long)off)
                throw ModelFormatException.In(file.Path, $"tensor {name}: data [{start}, {start + bytes}) lies past the end of the file ({file.Length} bytes; truncated?)");
            if (!tensors.TryAdd(name, new TensorView(name, type, shape, file.Pointer + start, bytes, file.Path)))
                throw ModelFormatException.In(file.Path, $"tensor {name} appears twice");
            order.Add(name);
        }
        return new GgufFile(file, version, meta, tensors, order, dataOffset, alignment);
    }

    public string? GetString(string key) => Metadata.TryGetValue(key, out var v) ? v as string : null;

    public long? GetInt(string key) => Metadata.TryGetValue(key, out var v) ? v switch { long l => l, bool b => b ? 1 : 0, _ => null } : null;

    public double? GetFloat(string key) => Metadata.TryGetValue(key, out var v) ? v switch { float f => f, double d => d, long l => l, _ => null } : null;

    public long RequireInt(string key) => GetInt(key) ?? throw ModelFormatException.In(Path, $"metadata key {key} is missing (expected an integer)");

    public void Dispose() => _file.Dispose();

    /// <summary>Bounds-checked little-endian cursor over the mapping.</summary>
    private sealed class Reader(MappedFile f)
    {
        public long Position;
        private ReadOnlySpan<byte> Take(int n, string what = "header")
        {
            if (Position + n > f.Length) throw ModelFormatException.In(f.Path, $"file ends inside the GGUF {what} at offset {Position} (truncated?)");
            var s = f.Span(Position, n); Position += n; return s;
        }
        public byte U8() => Take(1)[0];
        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public string Str(string what)
        {
            ulong n = U64();
            if (n > int.MaxValue || Position + (long)n > f.Length) throw ModelFormatException.In(f.Path, $"{what} of {n} bytes at offset {Position} runs past the end of the file (truncated?)");
            return Encoding.UTF8.GetString(Take((int)n, what));
        }

        public object Value(uint type, string key) => type switch
        {
            0 => (long)U8(),
            1 => (long)(sbyte)U8(),
            2 => (long)U16(),
            3 => (long)(short)U16(),
            4 => (long)U32(),
            5 => (long)(int)U32(),
            6 => BitConverter.Int32BitsToSingle((int)U32()),
            7 => U8() != 0,
            8 => Str($"value of {key}"),
            9 => Array(key),
            10 => (long)U64(),
            11 => (long)U64(),
            12 => BitConverter.Int64BitsToDouble((long)U64()),
            _ => throw ModelFormatException.In(f.Path, $"metadata {key}: unknown value type {type}"),
        };

        private object Array(string key)
        {
            uint t = U32();
            ulong n = U64();
            if (n > int.MaxValue || n > (ulong)(f.Length - Position)) throw ModelFormatException.In(f.Path, $"metadata {key}: array of {n} elements runs past the end of the file");
            int count = (int)n;
            switch (t)
            {
                case 8: { var a = new string[count]; for (int i = 0; i < count; i++) a[i] = Str($"element {i} of {key}"); return a; }
                case 0 or 1 or 2 or 3 or 4 or 5: { var a = new int[count]; for (int i = 0; i < count; i++) a[i] = (int)(long)Value(t, key); return a; }
                case 10 or 11: { var a = new long[count]; for (int i = 0; i < count; i++) a[i] = (long)U64(); return a; }
                case 6: { var a = new float[count]; for (int i = 0; i < count; i++) a[i] = BitConverter.Int32BitsToSingle((int)U32()); return a; }
                case 12: { var a = new double[count]; for (int i = 0; i < count; i++) a[i] = BitConverter.Int64BitsToDouble((long)U64()); return a; }
                case 7: { var a = new bool[count]; for (int i = 0; i < count; i++) a[i] = U8() != 0; return a; }
                default: throw ModelFormatException.In(f.Path, $"metadata {key}: unsupported array element type {t}");
            }
        }
    }
}
