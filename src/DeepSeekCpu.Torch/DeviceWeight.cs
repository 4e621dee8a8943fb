using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepSeekCpu.Torch;

/// <summary>
/// A linear layer's weight [rows, cols] on a device. Q8_0 and Q4_0 stay packed there (codes and a float32 scale per
/// block of 32) and are expanded block by block on the device each time they are used, so a quantized model takes
/// about its file size in device memory; every other stored type (F32, F16, BF16, FP8 with block scales, the k-quants)
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
    public static DeviceWeight Load(WeightMatrix m, Device device, ScalarType dtype) => m.Type switch
    {
        DType.Q8_0 => new Q8_0Weight(m, device, dtype),
        DType.Q4_0 => new Q4_0Weight(m, device, dtype),
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

    /// <summary>Calls <paramref name="split"/>(block bytes, codes, scale) for every block of rows r0..r0+n of a GGUF matrix.</summary>
    protected static unsafe void Blocks(WeightMatrix m, int r0, int n, Action<ReadOnlySpan<byte>, long, float[]> split, float[] scales)
    {
        int blocks = m.Cols / 32, bytes = m.Type.BlockBytes();
        for (int r = 0; r < n; r++)
        {
            var row = new ReadOnlySpan<byte>(m.Row(r0 + r), checked((int)m.RowBytes));
            for (int b = 0; b < blocks; b++)
            {
                var block = row.Slice(b * bytes, bytes);
                long i = (long)r * blocks + b;
                scales[i] = (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(block));   // f16 d first (ggml-common.h)
                split(block, i, scales);
            }
        }
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
/// Q8_0 (ggml-common.h block_q8_0: f16 d, 32 int8 q; value = d·q), kept as int8 codes [rows, blocks, 32] and float32
/// scales [rows, blocks, 1] on the device.
/// </summary>
internal sealed class Q8_0Weight : DeviceWeight
{
    private readonly Tensor _codes, _scales;
    private readonly ScalarType _dtype;

    public Q8_0Weight(WeightMatrix m, Device device, ScalarType dtype) : base(m.Rows, m.Cols)
    {
        _dtype = dtype;
        int blocks = m.Cols / 32, chunk = RowChunk(m);
        _codes = empty([m.Rows, blocks, 32], ScalarType.Int8, device);
        _scales = empty([m.Rows, blocks, 1], ScalarType.Float32, device);
        var codes = new sbyte[(long)chunk * m.Cols];
        var scales = new float[(long)chunk * blocks];
        for (int r0 = 0; r0 < m.Rows; r0 += chunk)
        {
            int n = Math.Min(chunk, m.Rows - r0);
            Blocks(m, r0, n, (block, i, _) => MemoryMarshal.Cast<byte, sbyte>(block.Slice(2, 32)).CopyTo(codes.AsSpan((int)(i * 32), 32)), scales);
            using var scope = NewDisposeScope();
            _codes.narrow(0, r0, n).copy_(tensor(codes, [chunk, blocks, 32]).narrow(0, 0, n));
            _scales.narrow(0, r0, n).copy_(tensor(scales, [chunk, blocks, 1]).narrow(0, 0, n));
        }
    }

    public override long Bytes => _codes.NumberOfElements + _scales.NumberOfElements * 4;
    public override Tensor Dense() => Decode(_codes, _scales).reshape(Rows, Cols);
    public override Tensor RowsOf(Tensor index) => Decode(_codes.index_select(0, index), _scales.index_select(0, index)).reshape(-1, Cols);
    private Tensor Decode(Tensor codes, Tensor scales) => (codes.to(ScalarType.Float32) * scales).to(_dtype);
    public override void Dispose() { _codes.Dispose(); _scales.Dispose(); }
}

/// <summary>
/// Q4_0 (ggml-common.h block_q4_0: f16 d, 16 bytes; element j is the low nibble of byte j, element j+16 the high
/// nibble; value = d·(q − 8)), kept as packed bytes [rows, blocks, 16] and float32 scales [rows, blocks, 1].
/// </summary>
internal sealed class Q4_0Weight : DeviceWeight
{
    private readonly Tensor _packed, _scales;
    private readonly ScalarType _dtype;

    public Q4_0Weight(WeightMatrix m, Device device, ScalarType dtype) : base(m.Rows, m.Cols)
    {
        _dtype = dtype;
        int blocks = m.Cols / 32, chunk = RowChunk(m);
        _packed = empty([m.Rows, blocks, 16], ScalarType.Byte, device);
        _scales = empty([m.Rows, blocks, 1], ScalarType.Float32, device);
        var packed = new byte[(long)chunk * blocks * 16];
        var scales = new float[(long)chunk * blocks];
        for (int r0 = 0; r0 < m.Rows; r0 += chunk)
        {
            int n = Math.Min(chunk, m.Rows - r0);
            Blocks(m, r0, n, (block, i, _) => block.Slice(2, 16).CopyTo(packed.AsSpan((int)(i * 16), 16)), scales);
            using var scope = NewDisposeScope();
            _packed.narrow(0, r0, n).copy_(tensor(packed, [chunk, blocks, 16]).narrow(0, 0, n));
            _scales.narrow(0, r0, n).copy_(tensor(scales, [chunk, blocks, 1]).narrow(0, 0, n));
        }
    }

    public override long Bytes => _packed.NumberOfElements + _scales.NumberOfElements * 4;
    public override Tensor Dense() => Decode(_packed, _scales).reshape(Rows, Cols);
    public override Tensor RowsOf(Tensor index) => Decode(_packed.index_select(0, index), _scales.index_select(0, index)).reshape(-1, Cols);

    private Tensor Decode(Tensor packed, Tensor scales)
    {
        var low = packed.bitwise_and(15);                                                // elements 0..15 of each block
        var high = packed.bitwise_right_shift(4);                                        // elements 16..31
        var q = cat([low, high], -1).to(ScalarType.Float32) - 8;                        // [.., blocks, 32]
        return (q * scales).to(_dtype);
    }

    public override void Dispose() { _packed.Dispose(); _scales.Dispose(); }
}
