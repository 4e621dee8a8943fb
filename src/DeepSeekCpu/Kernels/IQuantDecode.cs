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
        KernelPath.Avx512 => &Dot<T, IQuantDotAvx512>,
        KernelPath.Avx2 or KernelPath.Avx2Vnni => &Dot<T, IQuantDotAvx2>,
        KernelPath.NeonDp => &Dot<T, IQuantDotNeon<SdotDot>>,
        KernelPath.Neon => &Dot<T, IQuantDotNeon<WideningDot>>,
        _ => &DotReference.IQuant<T>,
    };

    /// <summary>The dot of one row with Q8_K activations: each super-block decoded, then the instruction set's
    /// integer dot of its 256 values and scales (<typeparamref name="TDot"/>) times the factor and the activation scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot<T, TDot>(byte* w, ActQ8* a) where T : IIQuant where TDot : IDecodedDot
    {
        DecodedBlock d;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, w += IQuant.BlockBytes<T>())
        {
            float f = Block<T>(w, &d);
            sum += f * a->D[b] * TDot.Dot(&d, a->Q + 256 * b);
        }
        return sum;
    }

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
    /// One super-block in integer form into <paramref name="d"/>: the 256 signed values and the integer scale of each
    /// 16 elements; returns the factor (x = factor · scale · v). Bytes are combined lane-wise in Vector128 (no carries
    /// between bytes): v = (grid ^ m) − m with m = 0xFF where negated, or 8·grid ± 1 for the IQ1 types.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Block<T>(byte* blk, DecodedBlock* d) where T : IIQuant
    {
        ulong* grid = (ulong*)d->V;
        for (int g = 0; g < 32; g++)
        {
            grid[g] = T.Grid(blk, g, out int signs);
            // IQ1: +1 or −1 in every byte; others: 0xFF where the element is negated
            d->Masks[g] = T.Shifted ? (signs != 0 ? ulong.MaxValue : 0x0101010101010101UL) : SignMasks[signs];
        }
        for (int k = 0; k < 16; k++) d->Scales[k] = (short)T.ScaleInt(blk, 2 * k);
        for (int i = 0; i < 256; i += 16)
        {
            var q = Vector128.Load(d->V + i);
            var m = Vector128.Load((sbyte*)d->Masks + i);       // the masks of groups i/8, i/8 + 1
            (T.Shifted ? Vector128.ShiftLeft(q, 3) + m : (q ^ m) - m).Store(d->V + i);
        }
        return IQuant.Factor<T>(blk);
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
        DecodedBlock d;
        var unit = Vector128.Create(T.Shifted ? 0.125f : 1f);
        for (int b = 0; b < blocks; b++, src += IQuant.BlockBytes<T>(), dst += 256)
        {
            Block<T>(src, &d);
            for (int g = 0; g < 32; g++)
            {
                var db = Vector128.Create(IQuant.Scale<T>(src, g));
                var w = Vector128.WidenLower(Vector128.CreateScalar(*(long*)(d.V + 8 * g)).AsSByte());   // 8 values as int16
                (db * (Vector128.ConvertToSingle(Vector128.WidenLower(w)) * unit)).Store(dst + 8 * g);
                (db * (Vector128.ConvertToSingle(Vector128.WidenUpper(w)) * unit)).Store(dst + 8 * g + 4);
            }
        }
    }
}

/// <summary>Σ_k scale_k · Σ_{16 values of k} v·x of a decoded super-block with 256 activations, on one instruction set.</summary>
internal unsafe interface IDecodedDot
{
    static abstract int Dot(DecodedBlock* d, sbyte* x);
}

/// <summary>A super-block in the integer form of <see cref="IIQuant"/> (IQuantDecode.Block's output, on the stack).</summary>
internal unsafe struct DecodedBlock
{
    /// <summary>The 256 values v.</summary>
    public fixed sbyte V[256];
    /// <summary>The scale of each 16 values (16 used; 32 so a 512-bit load stays inside).</summary>
    public fixed short Scales[32];
    /// <summary>Scratch: per group of 8 the sign mask or shift.</summary>
    public fixed ulong Masks[32];
}
