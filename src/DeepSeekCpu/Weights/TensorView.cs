namespace DeepSeekCpu.Weights;

/// <summary>
/// A named tensor inside a memory-mapped file: its element type, shape and a pointer to its bytes.
/// Shape is outermost first, as PyTorch and safetensors write it (a linear weight is [out, in]);
/// GGUF's ne[] is innermost first and readers reverse it.
/// </summary>
internal readonly unsafe struct TensorView
{
    public string Name { get; }
    public DType Type { get; }
    public long[] Shape { get; }
    public byte* Data { get; }
    public long ByteLength { get; }
    /// <summary>The file the bytes come from, for error messages.</summary>
    public string File { get; }

    public TensorView(string name, DType type, long[] shape, byte* data, long byteLength, string file)
    {
        Name = name; Type = type; Shape = shape; Data = data; ByteLength = byteLength; File = file;
    }

    public long ElementCount
    {
        get { long n = 1; foreach (var d in Shape) n *= d; return n; }
    }

    public int Rank => Shape.Length;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>The values as float32; only for plain F32 tensors (norm weights etc.).</summary>
    public ReadOnlySpan<float> AsF32()
    {
        if (Type != DType.F32) throw new ModelFormatException($"{File}: tensor {Name} is {Type}, expected F32 here");
        return new ReadOnlySpan<float>(Data, checked((int)ElementCount));
    }

    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)ByteLength));
}
