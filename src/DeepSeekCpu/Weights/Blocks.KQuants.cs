using System.Runtime.InteropServices;

namespace DeepSeekCpu.Weights;

// The blocks of the community R1/V3 GGUF files' lower-bit types (Q2_K, Q3_K) and of Q5_1, IQ4_NL, IQ4_XS:
// blittable mirrors of ggml/src/ggml-common.h (llama.cpp 3f545be), fields in C declaration order, sizes checked
// against DTypeInfo.BlockBytes in the tests (as in Blocks.cs).

/// <summary>block_q5_1 (24 bytes): nibbles and fifth bits as Q5_0 (<see cref="BlockQ5_0"/>); x = d * q + m, q in 0..31.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_1
{
    public Half D;
    public Half M;
    public fixed byte Qh[4];
    public fixed byte Qs[16];
}

/// <summary>
/// block_q2_K (84 bytes): 16 sub-blocks of 16; scales[s] holds sub-block s's 4-bit scale (low nibble) and 4-bit min
/// (high nibble); x = d * sc * q - dmin * m, q in 0..3. Per half of 128 elements (qs += 32): element 32j + l
/// (j = 0..3, l = 0..31) is bits 2j..2j+1 of qs[l], so sub-block s covers 16 consecutive elements.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ2_K
{
    public fixed byte Scales[16];
    public fixed byte Qs[64];
    public Half D;
    public Half DMin;
}

/// <summary>
/// block_q3_K (110 bytes): 16 sub-blocks of 16 with 6-bit scales (stored minus 32, packed in 12 bytes: see
/// <see cref="Q3KScales"/>); x = d * (sc - 32) * q, q in -4..3: the low 2 bits as in Q2_K, and q = low - 4 where
/// the high bit is clear. The high bit of element 32j + l of half h is bit 4h + j of hmask[l].
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ3_K
{
    public fixed byte HMask[32];
    public fixed byte Qs[64];
    public fixed byte Scales[12];
    public Half D;
}

/// <summary>block_iq4_nl (18 bytes): element j &lt; 16 is the low nibble of qs[j], j + 16 the high nibble, each an index
/// into <see cref="IQ4NL.Values"/>; x = d * value.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockIQ4_NL
{
    public Half D;
    public fixed byte Qs[16];
}

/// <summary>
/// block_iq4_xs (136 bytes): 8 sub-blocks of 32, each laid out as one IQ4_NL block's qs (16 bytes); a 6-bit scale per
/// sub-block, low 4 bits in scales_l (nibble ib % 2 of byte ib / 2), high 2 bits at bits 2ib..2ib+1 of scales_h;
/// x = d * (ls - 32) * value.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockIQ4_XS
{
    public Half D;
    public ushort ScalesH;
    public fixed byte ScalesL[4];
    public fixed byte Qs[128];
}

/// <summary>The IQ4 types' non-linear 4-bit grid.</summary>
internal static class IQ4NL
{
    /// <summary>kvalues_iq4nl (ggml-common.h): the 16 int8 levels an IQ4_NL/IQ4_XS index selects.</summary>
    public static ReadOnlySpan<sbyte> Values => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>Sub-block <paramref name="ib"/>'s 6-bit scale minus 32 (dequantize_row_iq4_xs).</summary>
    public static unsafe int Scale(BlockIQ4_XS* b, int ib) =>
        (((b->ScalesL[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b->ScalesH >> (2 * ib)) & 3) << 4)) - 32;
}

/// <summary>Q3_K's packed scales.</summary>
internal static unsafe class Q3KScales
{
    /// <summary>
    /// The 16 scales minus 32 as signed bytes (dequantize_row_q3_K's kmask trick): scale s keeps its low 4 bits in
    /// nibble s / 8 of byte s % 8 and its high 2 bits at bits 2(s / 4)..2(s / 4)+1 of byte 8 + s % 4.
    /// </summary>
    public static void Unpack(byte* packed, sbyte* scales16)
    {
        const uint m2 = 0x0f0f0f0f, m1 = 0x03030303;
        uint a0 = *(uint*)packed, a1 = *(uint*)(packed + 4), t = *(uint*)(packed + 8);
        uint* o = (uint*)scales16;
        o[0] = (a0 & m2) | ((t & m1) << 4);
        o[1] = (a1 & m2) | (((t >> 2) & m1) << 4);
        o[2] = ((a0 >> 4) & m2) | (((t >> 4) & m1) << 4);
        o[3] = ((a1 >> 4) & m2) | (((t >> 6) & m1) << 4);
        for (int s = 0; s < 16; s++) scales16[s] -= 32;
    }
}

/// <summary>
/// What the Q2_K and Q3_K dot bodies need of one super-block besides its 2-bit runs: Σ_s sc_s·Σ q·y is formed by
/// the bodies with unsigned levels (Q3_K: 0..7, its −4 offset folded into <see cref="Offset"/>); the dot is then
/// dy·(d·(Σ − Offset) − <see cref="Min"/>). Maths as DotReference.Q2_K / Q3_K (ggml_vec_dot_q2_K_q8_K, _q3_K_q8_K).
/// </summary>
internal readonly unsafe struct TwoBitSuperBlock
{
    public readonly byte* Qs;
    /// <summary>Q3_K's high bits; null for Q2_K.</summary>
    public readonly byte* HMask;
    public readonly float D;
    /// <summary>Q3_K: 4·Σ_s sc_s·bsum_s; Q2_K: 0.</summary>
    public readonly int Offset;
    /// <summary>Q2_K: dmin·Σ_s m_s·bsum_s; Q3_K: 0.</summary>
    public readonly float Min;

    /// <summary>Super-block <paramref name="b"/> of a Q2_K or Q3_K row; writes its 16 sub-block scales (signed) to
    /// <paramref name="scales16"/>; <paramref name="bsums"/> are the activations' 16 sums of that super-block.</summary>
    public TwoBitSuperBlock(byte* row, int b, bool q3, short* bsums, sbyte* scales16)
    {
        int sum = 0;
        if (q3)
        {
            var blk = (BlockQ3_K*)row + b;
            Q3KScales.Unpack(blk->Scales, scales16);
            for (int s = 0; s < 16; s++) sum += scales16[s] * bsums[s];
            Qs = blk->Qs; HMask = blk->HMask; D = (float)blk->D; Offset = 4 * sum;
        }
        else
        {
            var blk = (BlockQ2_K*)row + b;
            for (int s = 0; s < 16; s++) { scales16[s] = (sbyte)(blk->Scales[s] & 0xF); sum += (blk->Scales[s] >> 4) * bsums[s]; }
            Qs = blk->Qs; D = (float)blk->D; Min = (float)blk->DMin * sum;
        }
    }
}
