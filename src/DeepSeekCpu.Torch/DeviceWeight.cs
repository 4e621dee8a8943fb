using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekCpu.Torch;

/// <summary>
/// A linear layer's weight [rows, cols] on a device. Q8_0 and Q4_0 can stay packed there (codes and a float32 scale per
/// block of 32; <see cref="WeightStorage"/>) and are then expanded block by block on the device each time they are
/// used, so a quantized model takes about its file size in device memory; every other stored type (F32, F16, BF16, FP8 with block scales, the k-quants)
/// is expanded once into the compute type. Either way the host never holds more than one chunk of rows in float32:
/// the engine's own <see cref="Dequantize"/> decodes a chunk, which is copied to the device and dropped.
/// </summary>
internal abstract class DeviceWeight : IDisposable
{
    /// <summary>Rows of float32 staged on the host at a time (16 M values, 64 MB).</summary>
    private const long ChunkValues = 1 << 24;

    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Bytes held on the device.</summary>
    public abstract long Bytes { get; }

    protected DeviceWeight(int rows, int cols) { Rows = rows; Cols = cols; }

    /// <summary>The weight as a [rows, cols] tensor of the compute type (stored, or expanded into the current dispose scope).</summary>
    public abstract Tensor Dense();

    /// <summary>Rows <paramref name="index"/> [n] as [n, cols] of the compute type (an embedding lookup).</summary>
    public abstract Tensor RowsOf(Tensor index);

    /// <summary>
    /// y = x Wᵀ: x [.., cols] → [.., rows]. A packed weight's expansion lives only for this product (its own dispose
    /// scope), so a forward pass holds one expanded matrix at a time, not the whole model.
    /// </summary>
    public Tensor Forward(Tensor x)
    {
        if (this is DenseWeight d) return nn.functional.linear(x, d.W);
        using var scope = NewDisposeScope();
        return nn.functional.linear(x, Dense()).MoveToOuterDisposeScope();
    }

    public abstract void Dispose();

    /// <summary>Uploads a stored matrix (shape already checked by the engine's reader) to <paramref name="device"/>.</summary>
    public static DeviceWeight Load(WeightMatrix m, Device device, ScalarType dtype, bool packed = true) => m.Type switch
    {
        DType.Q8_0 when packed => new Q8_0Weight(m, device, dtype),
        DType.Q4_0 when packed => new Q4_0Weight(m, device, dtype),
        _ => new DenseWeight(Expand(m, device, dtype)),
    };

    /// <summary>A stored matrix expanded to [rows, cols] of <paramref name="dtype"/> on the device, a chunk of rows at a time.</summary>
    public static Tensor Expand(WeightMatrix m, Device device, ScalarType dtype)
    {
        var result = empty([m.Rows, m.Cols], dtype, device);
        int chunk = (int)Math.Max(1, Math.Min(m.Rows, ChunkValues / m.Cols));
        var host = new float[(long)chunk * m.Cols];
        for (int r0 = 0; r0 < m.Rows; r0 += chunk)
        {
            int n = Math.Min(chunk, m.Rows - r0);
            for (int r = 0; r < n; r++) Dequantize.RowOf(m, r0 + r, host.AsSpan(r * m.Cols, m.Cols));
            using var scope = NewDisposeScope();
            result.narrow(0, r0, n).copy_(tensor(host, [chunk, m.Cols]).narrow(0, 0, n));
        }
        return result;
    }

    protected static int RowChunk(WeightMatrix m) => (int)Math.Max(1, Math.Min(m.Rows, ChunkValues / m.Cols));
}

/// <summary>A weight expanded into the compute type.</summary>
internal sealed class DenseWeight(Tensor w) : DeviceWeight((int)w.shape[0], (int)w.shape[1])
{
    public Tensor W { get; } = w;                                                        // [rows, cols]
    public override long Bytes => W.NumberOfElements * W.ElementSize;
    public override Tensor Dense() => W;
    public override Tensor RowsOf(Tensor index) => W.index_select(0, index);
    public override void Dispose() => W.Dispose();
}

/// <summary>
/// A GGUF matrix of 32-element blocks that start with an f16 scale d (ggml-common.h block_q8_0, block_q4_0), kept on
/// the device as the blocks' code bytes [rows, blocks, codeBytes] of type T and float32 scales [rows, blocks, 1], and
/// decoded there by <see cref="Decode"/> when used.
/// </summary>
internal abstract class PackedWeight<T> : DeviceWeight where T : unmanaged
{
    private readonly Tensor _codes, _scales;
    protected readonly ScalarType OutType;

    protected PackedWeight(WeightMatrix m, Device device, ScalarType dtype, int codeBytes, ScalarType codeType, Func<T[], long[], Tensor> hostTensor)
        : base(m.Rows, m.Cols)
    {
        OutType = dtype;
        int blocks = m.Cols / 32, blockBytes = m.Type.BlockBytes(), chunk = RowChunk(m);
        _codes = empty([m.Rows, blocks, codeBytes], codeType, device);
        _scales = empty([m.Rows, blocks, 1], ScalarType.Float32, device);
        var codes = new T[(long)chunk * blocks * codeBytes];
        var scales = new float[(long)chunk * blocks];
        for (int r0 = 0; r0 < m.Rows; r0 += chunk)
        {
            int n = Math.Min(chunk, m.Rows - r0);
            for (int r = 0; r < n; r++)
            {
                ReadOnlySpan<byte> row;
                unsafe { row = new ReadOnlySpan<byte>(m.Row(r0 + r), checked((int)m.RowBytes)); }
                for (int b = 0; b < blocks; b++)
                {
                    var block = row.Slice(b * blockBytes, blockBytes);
                    int i = r * blocks + b;
                    scales[i] = (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(block));   // f16 d
                    MemoryMarshal.Cast<byte, T>(block.Slice(2, codeBytes)).CopyTo(codes.AsSpan(i * codeBytes, codeBytes));
                }
            }
            using var scope = NewDisposeScope();
            _codes.narrow(0, r0, n).copy_(hostTensor(codes, [chunk, blocks, codeBytes]).narrow(0, 0, n));
            _scales.narrow(0, r0, n).copy_(tensor(scales, [chunk, blocks, 1]).narrow(0, 0, n));
        }
    }

    public override long Bytes => _codes.NumberOfElements * _codes.ElementSize + _scales.NumberOfElements * 4;
    public override Tensor Dense() => Decode(_codes, _scales).reshape(Rows, Cols);
    public override Tensor RowsOf(Tensor index) => Decode(_codes.index_select(0, index), _scales.index_select(0, index)).reshape(-1, Cols);

    /// <summary>codes [.., blocks, codeBytes] and scales [.., blocks, 1] → values [.., blocks, 32] of the compute type.</summary>
    protected abstract Tensor Decode(Tensor codes, Tensor scales);

    public override void Dispose() { _codes.Dispose(); _scales.Dispose(); }
}

/// <summary>Q8_0 (block_q8_0: f16 d, 32 int8 q; value = d·q): int8 codes [rows, blocks, 32].</summary>
internal sealed class Q8_0Weight(WeightMatrix m, Device device, ScalarType dtype)
    : PackedWeight<sbyte>(m, device, dtype, 32, ScalarType.Int8, (a, shape) => tensor(a, shape))
{
    // int8 × float32 promotes to float32 in one pass (no float copy of the codes first)
    protected override Tensor Decode(Tensor codes, Tensor scales) => (codes * scales).to(OutType);
}

/// <summary>
/// Q4_0 (block_q4_0: f16 d, 16 bytes; element j is the low nibble of byte j, element j+16 the high nibble;
/// value = d·(q − 8)): the 16 packed bytes per block [rows, blocks, 16].
/// </summary>
internal sealed class Q4_0Weight(WeightMatrix m, Device device, ScalarType dtype)
    : PackedWeight<byte>(m, device, dtype, 16, ScalarType.Byte, (a, shape) => tensor(a, shape))
{
    protected override Tensor Decode(Tensor packed, Tensor scales)
    {
        var low = packed.bitwise_and(15);                                                // elements 0..15 of each block
        var high = packed.bitwise_right_shift(4);                                        // elements 16..31
        var q = cat([low, high], -1);                                                    // [.., blocks, 32] 0..15
        return (q * scales).sub_(scales * 8).to(OutType);                                // d·q − 8d = d·(q − 8)
    }
}
