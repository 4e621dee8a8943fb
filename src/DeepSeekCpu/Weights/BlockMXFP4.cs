using System.Runtime.InteropServices;

namespace DeepSeekCpu.Weights;

// MXFP4, the OCP Microscaling Formats (MX) v1.0 FP4 type as ggml stores it (GGML_TYPE_MXFP4 = 39, ggml.h;
// block_mxfp4 in ggml/src/ggml-common.h, llama.cpp 3f545be and later): 32 e2m1 values sharing one E8M0 power of two.
// DeepSeek-V4's FP4 experts are the same numbers in another layout (WeightMatrix.FromE2M1 converts them at load).

/// <summary>The e2m1 grid and the E8M0 scale of <see cref="BlockMXFP4"/>.</summary>
internal static class Mxfp4
{
    /// <summary>
    /// kvalues_mxfp4 (ggml-common.h): the e2m1 values 0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6 doubled so they are integers
    /// (code bit 3 is the sign, bits 0-2 the magnitude); the factor 2 is taken back by <see cref="HalfScale"/>.
    /// </summary>
    public static ReadOnlySpan<sbyte> Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    /// <summary>
    /// 2^(e − 128), half the E8M0 value 2^(e − 127), as ggml's ggml_e8m0_to_fp32_half (ggml-impl.h) builds it: the
    /// float bits (e − 1) &lt;&lt; 23 for e ≥ 2, the subnormals 2^−128 and 2^−127 for e = 0, 1. Like ggml, e = 255 (NaN in
    /// the MX specification) reads as 2^127.
    /// </summary>
    public static float HalfScale(byte e) => BitConverter.Int32BitsToSingle(e >= 2 ? (e - 1) << 23 : 0x00200000 << e);
}

/// <summary>
/// block_mxfp4 (17 bytes): one E8M0 byte e, then 16 bytes of 4-bit e2m1 codes; element j &lt; 16 is the low nibble of
/// qs[j], element j + 16 the high nibble (as Q4_0/IQ4_NL). x = <see cref="Mxfp4.Values"/>[code] · 2^(e − 128).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockMXFP4
{
    public byte E;
    public fixed byte Qs[16];
}
