using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// How DeepSeek-V4's stored tensors become matrices (names as released: <c>layers.N.attn.wq_a.weight</c>, no
/// <c>model.</c> prefix). Non-expert linears are BF16 or FP8 e4m3 with an E8M0 scale per 128x128 block in
/// "{name minus .weight}.scale"; routed experts are FP4 (<see cref="Fp4Expert"/>).
/// </summary>
internal static unsafe class V4Weights
{
    /// <summary>E2M1 (FP4) code → value (fixture README; OCP Microscaling spec v1.0 §5.3.3): sign bit 3, exponent bits 2-1, mantissa bit 0.</summary>
    internal static readonly float[] E2M1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    /// <summary>E8M0 scale byte → 2^(e − 127) (OCP MX spec §5.4.1; 0xFF is NaN, refused).</summary>
    internal static float E8M0(byte e, string file, string name) =>
        e == 0xFF ? throw new ModelFormatException($"{file}: tensor {name} holds a NaN scale (E8M0 0xFF)") : MathF.ScaleB(1f, e - 127);

    /// <summary>
    /// A linear weight [rows, cols]: FP8 with its E8M0 block scales (converted once to the float32 scales the FP8
    /// kernels read), otherwise as the loader maps it (BF16, F32, GGUF quants).
    /// </summary>
    public static WeightMatrix Linear(ModelWeights w, string prefix, int rows, int cols)
    {
        string name = prefix + ".weight";
        var t = w.Get(name);
        if (t.Type != DType.F8_E4M3 || w.TryGet(prefix + ".scale") is not { } s) return w.Matrix(name, rows, cols);
        if (t.Rank != 2 || t.Shape[0] != rows || t.Shape[1] != cols)
            throw new ModelFormatException($"{t.File}: tensor {name} has shape {t.ShapeText}, expected [{rows}, {cols}]");
        int sr = (rows + WeightMatrix.Fp8BlockSize - 1) / WeightMatrix.Fp8BlockSize, sc = (cols + WeightMatrix.Fp8BlockSize - 1) / WeightMatrix.Fp8BlockSize;
        if (s.Rank != 2 || s.Shape[0] != sr || s.Shape[1] != sc || s.Type is not (DType.F8_E8M0 or DType.F32))
            throw new ModelFormatException($"{s.File}: tensor {s.Name} is {s.Type} {s.ShapeText}, expected F8_E8M0 [{sr}, {sc}] block scales for {name}");
        var scales = new NativeBuffer((long)sr * sc * 4);
        var f = (float*)scales.Pointer;
        for (long i = 0; i < (long)sr * sc; i++) f[i] = s.Type == DType.F32 ? ((float*)s.Data)[i] : E8M0(s.Data[i], s.File, s.Name);
        w.AddDerived(name, t.ByteLength, scales);
        return new WeightMatrix(name, DType.F8_E4M3, rows, cols, t.Data, f, scales);
    }

    /// <summary>
    /// One routed expert matrix [rows, cols] from V4's FP4 layout: <paramref name="codes"/> I8 [rows, cols/2], two e2m1
    /// codes per byte (element 2j in the low nibble, 2j+1 in the high one), <paramref name="scales"/> F8_E8M0
    /// [rows, cols/32]. Until the MXFP4 kernels land this decodes at load into BF16 (exact: every e2m1 value times a
    /// power of two is a BF16 value), the one place that changes when they do.
    /// </summary>
    public static WeightMatrix Fp4Expert(TensorView codes, TensorView scales, int rows, int cols)
    {
        if (cols % 32 != 0) throw new ModelFormatException($"{codes.File}: tensor {codes.Name}: FP4 rows of {cols} values are not whole blocks of 32");
        if (codes.Type != DType.I8 || codes.Rank != 2 || codes.Shape[0] != rows || codes.Shape[1] != cols / 2)
            throw new ModelFormatException($"{codes.File}: tensor {codes.Name} is {codes.Type} {codes.ShapeText}, expected I8 [{rows}, {cols / 2}] (FP4 pairs)");
        if (scales.Type != DType.F8_E8M0 || scales.Rank != 2 || scales.Shape[0] != rows || scales.Shape[1] != cols / 32)
            throw new ModelFormatException($"{scales.File}: tensor {scales.Name} is {scales.Type} {scales.ShapeText}, expected F8_E8M0 [{rows}, {cols / 32}]");
        var buffer = new NativeBuffer((long)rows * cols * 2);
        var dst = (ushort*)buffer.Pointer;
        for (long r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++)
            {
                float scale = E8M0(scales.Data[r * (cols / 32) + b], scales.File, scales.Name);
                for (int i = 0; i < 16; i++)
                {
                    byte pair = codes.Data[r * (cols / 2) + b * 16 + i];
                    long at = r * cols + b * 32 + 2 * i;
                    dst[at] = Bf16(E2M1[pair & 0xF] * scale);
                    dst[at + 1] = Bf16(E2M1[pair >> 4] * scale);
                }
            }
        return new WeightMatrix(codes.Name, DType.BF16, rows, cols, (byte*)dst, null, buffer);
    }

    /// <summary>The upper half of an f32 that BF16 holds exactly (an e2m1 value times a power of two).</summary>
    private static ushort Bf16(float v) => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16);

    /// <summary>A float32 tensor of exactly <paramref name="shape"/> (hc_*_fn, ape), as a fresh array.</summary>
    public static float[] Floats(ModelWeights w, string name, params int[] shape)
    {
        var t = w.Get(name);
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (t.Rank != shape.Length || !t.Shape.Select(v => (int)v).SequenceEqual(shape))
            throw new ModelFormatException($"{t.File}: tensor {name} has shape {t.ShapeText}, expected [{string.Join(", ", shape)}]");
        var v = new float[count];
        if (t.Type == DType.F32) t.AsF32().CopyTo(v);
        else if (t.Type == DType.BF16) for (long i = 0; i < count; i++) v[i] = Dequantize.Bf16ToFloat(((ushort*)t.Data)[i]);
        else throw new ModelFormatException($"{t.File}: tensor {name} is {t.Type}, expected F32 or BF16");
        return v;
    }
}
