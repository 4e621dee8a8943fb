using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Kernels.Arm;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) for the fast paths. Their grids are read with
/// scalar table lookups (as ggml's SIMD kernels also do), so one portable decode turns a super-block into the integer
/// form of <see cref="IIQuant"/>: 256 signed bytes v and 16 scales (one per 16 elements). Each instruction set then
/// has one generic body (DotX86.IQuant / IQuantAvx512, DotArm.IQuant) that multiplies those bytes with the Q8_K
/// activations and applies the scales in integers, and <see cref="Floats{T}"/> expands rows for the float GEMM and
/// embeddings. No quantizer: ggml's needs an importance matrix; these types are read, not written.
/// </summary>
internal static unsafe class IQuantDecode
{
    /// <summary>Whether <paramref name="t"/> is one of the i-quants handled here.</summary>
    public static bool Handles(DType t) => t is DType.IQ2_XXS or DType.IQ2_XS or DType.IQ2_S or DType.IQ3_XXS or DType.IQ3_S or DType.IQ1_S or DType.IQ1_M;

    public static int BlockBytes<T>() where T : IIQuant => T.Type.BlockBytes();

    /// <summary>The dot body of <paramref name="t"/> on <paramref name="path"/> (the scalar specification on Scalar).</summary>
    public static delegate*<byte*, ActQ8*, float> Dot(DType t, KernelPath path) => t switch
    {
        DType.IQ2_XXS => Dot<IQ2XXS>(path),
        DType.IQ2_XS => Dot<IQ2XS>(path),
        DType.IQ2_S => Dot<IQ2S>(path),
        DType.IQ3_XXS => Dot<IQ3XXS>(path),
        DType.IQ3_S => Dot<IQ3S>(path),
        DType.IQ1_S => Dot<IQ1S>(path),
        DType.IQ1_M => Dot<IQ1M>(path),
        _ => null,
    };

    private static delegate*<byte*, ActQ8*, float> Dot<T>(KernelPath path) where T : IIQuant => path switch
    {
        KernelPath.Avx512 => &DotX86.IQuantAvx512<T>,
        KernelPath.Avx2 or KernelPath.Avx2Vnni => &DotX86.IQuant<T>,
        KernelPath.NeonDp => &DotArm.IQuant<T, SdotDot>,
        KernelPath.Neon => &DotArm.IQuant<T, WideningDot>,
        _ => &DotReference.IQuant<T>,
    };

    /// <summary>Per sign byte, the 8-byte mask with 0xFF where the bit is set (negation by (g ^ m) − m).</summary>
    private static readonly ulong[] SignMasks = BuildSignMasks();

    private static ulong[] BuildSignMasks()
    {
        var m = new ulong[256];
        for (int s = 0; s < 256; s++)
            for (int j = 0; j < 8; j++)
                if ((s & (1 << j)) != 0) m[s] |= 0xFFUL << (8 * j);
        return m;
    }

    /// <summary>
    /// One super-block in integer form: <paramref name="v"/>[256] the signed values, <paramref name="scales"/>[16] the
    /// integer scale of each 16 elements; returns the factor (x = factor · scale · v). <paramref name="masks"/> is
    /// scratch for 32 ulongs. Bytes are combined lane-wise in Vector128 (no carries between bytes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Block<T>(byte* blk, sbyte* v, short* scales, ulong* masks) where T : IIQuant
    {
        ulong* grid = (ulong*)v;
        for (int g = 0; g < 32; g++)
        {
            grid[g] = T.Grid(blk, g, out int signs);
            // IQ1: +1 or −1 in every byte; others: 0xFF where the element is negated
            masks[g] = T.Shifted ? (signs != 0 ? ulong.MaxValue : 0x0101010101010101UL) : SignMasks[signs];
        }
        for (int k = 0; k < 16; k++) scales[k] = (short)T.ScaleInt(blk, 2 * k);
        for (int i = 0; i < 256; i += 16)
        {
            var q = Vector128.Load(v + i);
            var m = Vector128.Load((sbyte*)masks + i);
            (T.Shifted ? Vector128.ShiftLeft(q, 3) + m : (q ^ m) - m).Store(v + i);
        }
        return T.Factor(blk);
    }

    /// <summary>Rows of <paramref name="t"/> as float32 (whole super-blocks), equal to <see cref="Dequantize"/> bit for bit:
    /// y = ggml's group scale · v (IQ1: · v/8, exact), as ggml's db · grid · sign.</summary>
    public static void Floats(DType t, byte* src, int blocks, float* dst)
    {
        switch (t)
        {
            case DType.IQ2_XXS: Floats<IQ2XXS>(src, blocks, dst); break;
            case DType.IQ2_XS: Floats<IQ2XS>(src, blocks, dst); break;
            case DType.IQ2_S: Floats<IQ2S>(src, blocks, dst); break;
            case DType.IQ3_XXS: Floats<IQ3XXS>(src, blocks, dst); break;
            case DType.IQ3_S: Floats<IQ3S>(src, blocks, dst); break;
            case DType.IQ1_S: Floats<IQ1S>(src, blocks, dst); break;
            default: Floats<IQ1M>(src, blocks, dst); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Floats<T>(byte* src, int blocks, float* dst) where T : IIQuant
    {
        sbyte* v = stackalloc sbyte[256];
        short* scales = stackalloc short[16];
        ulong* masks = stackalloc ulong[32];
        int size = BlockBytes<T>();
        var unit = Vector128.Create(T.Shifted ? 0.125f : 1f);
        for (int b = 0; b < blocks; b++, src += size, dst += 256)
        {
            Block<T>(src, v, scales, masks);
            for (int g = 0; g < 32; g++)
            {
                var db = Vector128.Create(T.Scale(src, g));
                var w = Vector128.WidenLower(Vector128.CreateScalar(*(long*)(v + 8 * g)).AsSByte());   // 8 values as int16
                (db * (Vector128.ConvertToSingle(Vector128.WidenLower(w)) * unit)).Store(dst + 8 * g);
                (db * (Vector128.ConvertToSingle(Vector128.WidenUpper(w)) * unit)).Store(dst + 8 * g + 4);
            }
        }
    }
}
