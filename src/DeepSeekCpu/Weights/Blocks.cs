using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeepSeekCpu.Weights;

// Blittable mirrors of llama.cpp's quantization blocks (ggml/src/ggml-common.h, the `block_*` typedefs and their
// static_asserts on sizeof). Fields are in the C declaration order; `ggml_half` is IEEE binary16, stored here as
// System.Half (2 bytes, blittable). Pack = 1 because ggml's blocks contain no padding: the sizes below are the
// GGUF on-disk sizes and each struct is checked against DTypeInfo.BlockBytes in the tests.
// QK_K = 256 is the super-block size of the K-quants; K_SCALE_SIZE = 12.

/// <summary>block_q8_0 (34 bytes): x[i] = d * qs[i].</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_0
{
    public Half D;
    public fixed sbyte Qs[32];
}

/// <summary>block_q4_0 (18 bytes): element j &lt; 16 is the low nibble of qs[j], element j + 16 the high nibble;
/// x = d * (q - 8).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_0
{
    public Half D;
    public fixed byte Qs[16];
}

/// <summary>block_q4_1 (20 bytes): nibbles as Q4_0, x = d * q + m.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_1
{
    public Half D;
    public Half M;
    public fixed byte Qs[16];
}

/// <summary>block_q5_0 (22 bytes): low 4 bits as Q4_0; bit j of qh is the fifth bit of element j; x = d * (q - 16).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_0
{
    public Half D;
    public fixed byte Qh[4];
    public fixed byte Qs[16];
}

/// <summary>block_q8_K (292 bytes): the K-quants' activation format. x = d * qs; bsums[j] = sum of qs[16j..16j+15].
/// Its scale is a float, not a half.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_K
{
    public float D;
    public fixed sbyte Qs[256];
    public fixed short BSums[16];
}

/// <summary>
/// block_q4_K (144 bytes): 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes (see
/// <see cref="KQuant.ScaleMin"/>); x = d * sc_j * q - dmin * m_j. Nibble layout: each 32-byte group of qs holds
/// sub-block 2g in its low nibbles and sub-block 2g+1 in its high nibbles.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qs[128];
}

/// <summary>block_q5_K (176 bytes): as Q4_K plus qh: bit 2g of qh[l] is the fifth bit of element l of sub-block 2g,
/// bit 2g+1 that of sub-block 2g+1.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qh[32];
    public fixed byte Qs[128];
}

/// <summary>
/// block_q6_K (210 bytes): 16 sub-blocks of 16 with int8 scales; x = d * scales[s] * (q - 32), q 6 bits: low 4 in ql,
/// high 2 in qh. Per half of 128 elements (ql += 64, qh += 32): element l (l &lt; 32) has low nibble of ql[l] and
/// qh bits 0-1; l+32: low nibble of ql[l+32], bits 2-3; l+64: high nibble of ql[l], bits 4-5; l+96: high nibble
/// of ql[l+32], bits 6-7.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ6_K
{
    public fixed byte Ql[128];
    public fixed byte Qh[64];
    public fixed sbyte Scales[16];
    public Half D;
}

/// <summary>Helpers shared by the K-quant readers and writers.</summary>
internal static unsafe class KQuant
{
    /// <summary>
    /// Scale and min of sub-block <paramref name="j"/> (0..7) from the 12 packed bytes of Q4_K/Q5_K
    /// (ggml-quants.c get_scale_min_k4): sub-blocks 0-3 keep 6 bits in bytes j and j+4; sub-blocks 4-7 keep their
    /// low 4 bits in byte j+4 (scale low nibble, min high nibble) and their top 2 bits in the top bits of bytes
    /// j-4 (scale) and j (min).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMin(int j, byte* q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>All 8 scales and 8 mins at once as 8 bytes each (byte j = sub-block j), computed in registers
    /// (the bit trick of ggml's SIMD kernels). Keeping them out of memory avoids a store-forwarding stall when they
    /// are then loaded as one 64-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void UnpackScalesMins(byte* packed, out ulong scales, out ulong mins)
    {
        const uint k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
        uint u0 = *(uint*)packed, u1 = *(uint*)(packed + 4), u2 = *(uint*)(packed + 8);
        scales = (u0 & k1) | ((ulong)((u2 & k2) | (((u0 >> 6) & k3) << 4)) << 32);
        mins = (u1 & k1) | ((ulong)(((u2 >> 4) & k2) | (((u1 >> 6) & k3) << 4)) << 32);
    }

    /// <summary>All 8 scales (bytes 0-7) and 8 mins (bytes 8-15) at once, the bit trick of ggml's SIMD kernels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void UnpackScalesMins(byte* packed, uint* out4)
    {
        const uint k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
        uint u0 = *(uint*)packed, u1 = *(uint*)(packed + 4), u2 = *(uint*)(packed + 8);
        out4[0] = u0 & k1;                                        // scales 0-3
        out4[1] = (u2 & k2) | (((u0 >> 6) & k3) << 4);            // scales 4-7
        out4[2] = u1 & k1;                                        // mins 0-3
        out4[3] = ((u2 >> 4) & k2) | (((u1 >> 6) & k3) << 4);    // mins 4-7
    }

    /// <summary>
    /// Quant <paramref name="l"/> (0..31) of sub-block <paramref name="j"/> (0..7) of a Q4_K or Q5_K block: the low
    /// (even j) or high (odd j) nibble of qs[32·(j/2) + l], plus 16 where <paramref name="qh"/> (Q5_K; null for Q4_K)
    /// has bit j of qh[l] set (ggml-quants.c dequantize_row_q4_K / q5_K).
    /// </summary>
    public static int K4Quant(byte* qs, byte* qh, int j, int l)
    {
        int nibble = (qs[32 * (j / 2) + l] >> (4 * (j & 1))) & 0xF;
        return qh == null ? nibble : nibble | (((qh[l] >> j) & 1) << 4);
    }

    /// <summary>
    /// Quant <paramref name="i"/> (0..255) of a Q6_K block minus 32, in −32..31; its scale is Scales[i / 16]. Bits as
    /// <see cref="BlockQ6_K"/> describes (ggml-quants.c dequantize_row_q6_K).
    /// </summary>
    public static int Q6Quant(BlockQ6_K* b, int i)
    {
        int half = i / 128, quarter = i / 32 % 4, l = i % 32;
        int low = (b->Ql[64 * half + 32 * (quarter & 1) + l] >> (4 * (quarter / 2))) & 0xF;
        int high = (b->Qh[32 * half + l] >> (2 * quarter)) & 3;
        return (low | (high << 4)) - 32;
    }
}

/// <summary>
/// Q4_K and Q5_K differ only by Q5_K's 32 bytes of fifth bits (qh) between the scales and the nibbles (D, DMin and
/// Scales sit at the same offsets in both), so each ISA has one body for both, generic over this flavour; the JIT
/// folds the constants, so the Q4_K instance carries no qh code.
/// </summary>
internal interface IK4Layout
{
    static abstract int BlockBytes { get; }
    /// <summary>Offset of qs (128 bytes of nibbles) in the block.</summary>
    static abstract int QsOffset { get; }
    /// <summary>Q5_K: qh (at <see cref="BlockQ5_K.Qh"/>'s offset) holds bit 4 of every quant.</summary>
    static abstract bool HasQh { get; }
}

internal readonly unsafe struct Q4_KLayout : IK4Layout
{
    public static int BlockBytes => sizeof(BlockQ4_K);
    public static int QsOffset => 16;
    public static bool HasQh => false;
}

internal readonly unsafe struct Q5_KLayout : IK4Layout
{
    public static int BlockBytes => sizeof(BlockQ5_K);
    public static int QsOffset => 48;
    public static bool HasQh => true;
}
