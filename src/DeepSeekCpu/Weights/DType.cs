namespace DeepSeekCpu.Weights;

/// <summary>
/// Element formats of weights. Numeric values of the GGUF types are ggml's <c>ggml_type</c> ids
/// (ggml/include/ggml.h), so a GGUF tensor info's type field casts straight to this enum.
/// Types that GGUF does not have (DeepSeek's block-scaled FP8) use ids above 1000.
/// </summary>
public enum DType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ4_NL = 20,
    IQ4_XS = 23,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ3_S = 21, IQ2_S = 22, IQ1_M = 29,   // i-quants (BlocksIQ.cs)
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
    /// <summary>OCP microscaling FP4 (ggml's GGML_TYPE_MXFP4): e2m1 codes with one E8M0 scale per 32 (BlockMXFP4).</summary>
    MXFP4 = 39,

    /// <summary>float8_e4m3fn with a separate float32 scale per 128x128 block (DeepSeek-V3 official checkpoints).</summary>
    F8_E4M3 = 1001,

    /// <summary>
    /// float8_e8m0fnu: a bare power of two 2^(e − 127) per byte (0xFF is NaN); DeepSeek-V4's FP4 expert scales, one per
    /// 32 inputs. Computed with as <see cref="MXFP4"/> blocks (WeightMatrix.FromE2M1).
    /// </summary>
    F8_E8M0 = 1002,
}

internal static class DTypeInfo
{
    /// <summary>Elements per block (1 for plain element types). Block layouts: ggml-common.h.</summary>
    public static int BlockSize(this DType t) => t switch
    {
        DType.Q4_0 or DType.Q4_1 or DType.Q5_0 or DType.Q5_1 or DType.Q8_0 or DType.Q8_1 => 32,
        DType.IQ4_NL => 32,
        DType.MXFP4 => 32,
        DType.IQ4_XS => 256,
        DType.Q2_K or DType.Q3_K or DType.Q4_K or DType.Q5_K or DType.Q6_K or DType.Q8_K => 256,
        DType.IQ2_XXS or DType.IQ2_XS or DType.IQ2_S or DType.IQ3_XXS or DType.IQ3_S or DType.IQ1_S or DType.IQ1_M => 256,
        _ => 1,
    };

    /// <summary>Bytes per block (per element for plain types). Sizes: ggml-common.h static_asserts.</summary>
    public static int BlockBytes(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.F8_E4M3 or DType.F8_E8M0 or DType.I8 => 1,
        DType.I16 => 2,
        DType.I32 => 4,
        DType.I64 or DType.F64 => 8,
        DType.Q4_0 => 18,   // f16 d; 16 bytes of nibbles
        DType.Q4_1 => 20,   // f16 d, f16 m; 16 bytes of nibbles
        DType.Q5_0 => 22,   // f16 d; u32 high bits; 16 bytes of nibbles
        DType.Q5_1 => 24,   // f16 d, f16 m; u32 high bits; 16 bytes
        DType.Q8_0 => 34,   // f16 d; 32 int8
        DType.Q8_1 => 36,   // f16 d, f16 s; 32 int8
        DType.Q2_K => 84,   // 16 bytes of 4-bit scales/mins; 64 bytes of 2-bit quants; f16 d, dmin
        DType.Q3_K => 110,  // 32 bytes of high bits; 64 bytes of 2-bit quants; 12 bytes of 6-bit scales; f16 d
        DType.IQ4_NL => 18, // f16 d; 16 bytes of 4-bit indices into kvalues_iq4nl
        DType.MXFP4 => 17,  // E8M0 e; 16 bytes of e2m1 codes (block_mxfp4)
        DType.IQ4_XS => 136, // f16 d; u16 scales_h; 4 bytes scales_l; 128 bytes of indices
        DType.Q4_K => 144,  // f16 d, f16 dmin; 12 bytes of 6-bit scales/mins; 128 bytes of nibbles
        DType.Q5_K => 176,  // as Q4_K plus 32 bytes of high bits
        DType.Q6_K => 210,  // 128 low nibbles, 64 high 2-bits, 16 int8 scales, f16 d
        DType.Q8_K => 292,  // f32 d; 256 int8; 16 int16 block sums
        DType.IQ2_XXS => 66, DType.IQ2_XS => 74, DType.IQ2_S => 82, DType.IQ3_XXS => 98, DType.IQ3_S => 110, DType.IQ1_S => 50, DType.IQ1_M => 56,
        _ => throw new NotSupportedException($"unknown element type {t}"),
    };

    public static bool IsQuantized(this DType t) => t.BlockSize() > 1;

    /// <summary>Bytes for <paramref name="elements"/> elements (must be a whole number of blocks).</summary>
    public static long ByteCount(this DType t, long elements)
    {
        int bs = t.BlockSize();
        if (elements % bs != 0) throw new ArgumentException($"{elements} elements is not a whole number of {t} blocks of {bs}");
        return elements / bs * t.BlockBytes();
    }

    /// <summary>Safetensors dtype strings (huggingface/safetensors, README "dtype").</summary>
    public static DType FromSafetensors(string s) => s switch
    {
        "F32" => DType.F32,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "F64" => DType.F64,
        "F8_E4M3" => DType.F8_E4M3,
        "F8_E8M0" => DType.F8_E8M0,
        "I8" => DType.I8,
        "I16" => DType.I16,
        "I32" => DType.I32,
        "I64" => DType.I64,
        _ => throw new NotSupportedException($"dtype \"{s}\" (expected F32, F16, BF16, F8_E4M3, F8_E8M0, F64, I8..I64)"),
    };

    public static bool IsKnownGguf(uint id) => Enum.IsDefined(typeof(DType), (int)id) && id < 1000;
}
