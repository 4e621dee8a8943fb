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
    /// [rows, cols/32]. It stays FP4: an MXFP4 copy (4.25 bits per weight, WeightMatrix.FromE2M1, exact) computed with
    /// float32 activations, as the fixture's reference computes the experts (its act_quant is off; DeepSeek's deployment
    /// rounds them to FP8 e4m3 per 128 before fp4_gemm, and ggml's MXFP4 kernels to Q8_0: both move the logits).
    /// </summary>
    public static WeightMatrix Fp4Expert(TensorView codes, TensorView scales, int rows, int cols)
    {
        if (codes.Rank != 2 || codes.Shape[0] != rows || codes.Shape[1] * 2 != cols)
            throw new ModelFormatException($"{codes.File}: tensor {codes.Name} is {codes.Type} {codes.ShapeText}, expected I8 [{rows}, {cols / 2}] (FP4 pairs)");
        return WeightMatrix.FromE2M1(codes, scales).WithFloatActivations();
    }

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
