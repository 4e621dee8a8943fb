using System.Runtime.InteropServices;

namespace DeepSeekCpu.Weights;

// ggml's i-quant blocks (ggml/src/ggml-common.h, block_iq2_xxs … block_iq1_m and their static_asserts), as Blocks.cs
// mirrors the K-quants. All are super-blocks of QK_K = 256 elements, read in groups of 8 that index a grid of
// magnitudes (IQuantGrids) and carry 8 sign bits (IQ2/IQ3) or a shift of ±1/8 (IQ1). uint16 fields are little-endian.

/// <summary>block_iq2_xxs (66 bytes): per 32 elements 8 bytes of qs: 4 bytes of iq2xxs_grid indices, then a u32
/// with 4 × 7 sign bits (ksigns_iq2xs) and a 4-bit scale in bits 28-31; x = d·(0.5 + s)/4·grid·sign.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ2_XXS { public Half D; public fixed ushort Qs[32]; }

/// <summary>block_iq2_xs (74 bytes): qs[i] = 9-bit iq2xs_grid index | 7 sign bits &lt;&lt; 9, per 8 elements;
/// a 4-bit scale per 16 elements (low nibble first).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ2_XS { public Half D; public fixed ushort Qs[32]; public fixed byte Scales[8]; }

/// <summary>block_iq2_s (82 bytes): qs[0..31] low 8 bits of the 10-bit iq2s_grid indices (2 more per index in qh),
/// qs[32..63] one full sign byte per 8 elements; a 4-bit scale per 16 elements.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ2_S { public Half D; public fixed byte Qs[64]; public fixed byte Qh[8]; public fixed byte Scales[8]; }

/// <summary>block_iq3_xxs (98 bytes): qs[0..63] iq3xxs_grid indices (4 elements each), qs[64..95] per 32 elements a
/// u32 of 4 × 7 sign bits and a 4-bit scale in bits 28-31; x = d·(0.5 + s)/2·grid·sign.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ3_XXS { public Half D; public fixed byte Qs[96]; }

/// <summary>block_iq3_s (110 bytes): 9-bit iq3s_grid indices (low 8 in qs, bit 8 in qh), a sign byte per 8 elements,
/// a 4-bit scale per 32 elements; x = d·(1 + 2s)·grid·sign.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ3_S { public Half D; public fixed byte Qs[64]; public fixed byte Qh[8]; public fixed byte Signs[32]; public fixed byte Scales[4]; }

/// <summary>block_iq1_s (50 bytes): 11-bit iq1s_grid indices (low 8 in qs, 3 more per index in qh), per 32 elements
/// qh holds a 3-bit scale (bits 12-14) and the sign of the shift (bit 15); x = d·(2s + 1)·(grid ± 1/8).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ1_S { public Half D; public fixed byte Qs[32]; public fixed ushort Qh[8]; }

/// <summary>block_iq1_m (56 bytes): no d field: the f16 super-block scale is spread over the top nibbles of the four
/// u16 of scales, which also hold a 3-bit scale per 16 elements; qh holds per 8 elements 3 index bits and the sign
/// of the ±1/8 shift (bit 3 of each nibble).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)] internal unsafe struct BlockIQ1_M { public fixed byte Qs[32]; public fixed byte Qh[16]; public fixed byte Scales[8]; }
