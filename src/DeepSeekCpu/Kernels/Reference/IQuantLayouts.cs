using System.Runtime.CompilerServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// What each i-quant stores for one group of 8 elements (group g holds elements 8g..8g+7 of a 256-element super-block):
/// the facts of ggml-quants.c dequantize_row_iq* and ggml-cpu/quants.c ggml_vec_dot_iq*_q8_K_generic, one struct per
/// type, read by the scalar specification (Dequantize, DotReference) and by the SIMD decode (IQuantDecode) alike.
/// Integer form shared by every dot body: x = Factor · ScaleInt(g) · v, with v = grid·sign (IQ2, IQ3) or 8·grid ± 1
/// (IQ1: grid ± 1/8 times 8, Factor carrying the 1/8), so |v| ≤ 62 and products fit int8 × int8 → int16 pairs.
/// </summary>
internal unsafe interface IIQuant
{
    static abstract DType Type { get; }

    /// <summary>IQ1: grid values carry a ±1/8 shift instead of signs.</summary>
    static abstract bool Shifted { get; }

    /// <summary>ggml's constant of the type's dot (the 0.125f, 0.25f or none that vec_dot applies at the end).</summary>
    static abstract float Unit { get; }

    /// <summary>The f16 super-block scale d as float.</summary>
    static abstract float D(byte* blk);

    /// <summary>The group's 8 grid values, element j in byte j, and its sign bits (bit j negates element j); for the
    /// IQ1 types the bytes are signed −1/0/1 and bit 0 of <paramref name="signs"/> says the ±1/8 shift is negative.</summary>
    static abstract ulong Grid(byte* blk, int g, out int signs);

    /// <summary>The integer scale 2s + 1 of group g (the same for the two groups of each 16 elements).</summary>
    static abstract int ScaleInt(byte* blk, int g);
}

/// <summary>What follows from the per-type facts of <see cref="IIQuant"/>, for every type alike.</summary>
internal static unsafe class IQuant
{
    /// <summary>ggml's float scale of group g in dequantize_row_* (its db, dl). ggml writes d·(0.5 + s)·0.25 (IQ2),
    /// d·(0.5 + s)·0.5 (IQ3_XXS), d·(1 + 2s) (IQ3_S, IQ1): each is d·(2s + 1) rounded once, times an exact power of
    /// two, so this one expression gives ggml's bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale<T>(byte* blk, int g) where T : IIQuant => T.D(blk) * T.ScaleInt(blk, g) * (T.Shifted ? 1f : T.Unit);

    /// <summary>Super-block factor of the integer form: d times ggml's constant (the IQ1 types: 1/8 for v = 8·grid ± 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Factor<T>(byte* blk) where T : IIQuant => T.D(blk) * T.Unit;

    /// <summary>The int value v of element j of a group in the integer form.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(ulong grid, int signs, int j, bool shifted) => shifted
        ? 8 * (sbyte)(grid >> (8 * j)) + ((signs & 1) != 0 ? -1 : 1)
        : (int)((grid >> (8 * j)) & 0xFF) * ((signs >> j & 1) != 0 ? -1 : 1);

    public static int BlockBytes<T>() where T : IIQuant => T.Type.BlockBytes();
}

// IQ2_XXS: per 32 elements (ib = g/4, l = g%4) two u32: grid indices in the bytes of the first, 4 × 7 sign bits and a
// 4-bit scale s (bits 28-31) in the second, completed to 8 signs by ksigns_iq2xs; dot: 0.125·d·Σ(2s+1)·Σ grid·sign·q8.
internal readonly unsafe struct IQ2XXS : IIQuant
{
    public static DType Type => DType.IQ2_XXS; public static bool Shifted => false; public static float Unit => 0.125f;
    public static float D(byte* b) => (float)((BlockIQ2_XXS*)b)->D;
    private static uint Aux(byte* b, int g) => *(uint*)(((BlockIQ2_XXS*)b)->Qs + 4 * (g / 4) + 2);
    public static int ScaleInt(byte* b, int g) => 2 * (int)(Aux(b, g) >> 28) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        signs = IQuantGrids.KSigns[(int)(Aux(b, g) >> (7 * (g % 4))) & 127];
        return IQuantGrids.Iq2xxs[((byte*)((BlockIQ2_XXS*)b)->Qs)[8 * (g / 4) + g % 4]];
    }
}

// IQ2_XS: qs[g] = 9-bit grid index | 7 sign bits << 9; a scale nibble per 16 (low for groups 0-1 of each 32).
internal readonly unsafe struct IQ2XS : IIQuant
{
    public static DType Type => DType.IQ2_XS; public static bool Shifted => false; public static float Unit => 0.125f;
    public static float D(byte* b) => (float)((BlockIQ2_XS*)b)->D;
    public static int ScaleInt(byte* b, int g) => 2 * ((((BlockIQ2_XS*)b)->Scales[g / 4] >> (4 * (g % 4 / 2))) & 0xF) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        int q = ((BlockIQ2_XS*)b)->Qs[g];
        signs = IQuantGrids.KSigns[q >> 9];
        return IQuantGrids.Iq2xs[q & 511];
    }
}

// IQ2_S: 10-bit grid index qs[g] | bits 2l, 2l+1 of qh[ib] as bits 8-9; sign byte qs[32 + g]; scales as IQ2_XS.
internal readonly unsafe struct IQ2S : IIQuant
{
    public static DType Type => DType.IQ2_S; public static bool Shifted => false; public static float Unit => 0.125f;
    public static float D(byte* b) => (float)((BlockIQ2_S*)b)->D;
    public static int ScaleInt(byte* b, int g) => 2 * ((((BlockIQ2_S*)b)->Scales[g / 4] >> (4 * (g % 4 / 2))) & 0xF) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        var blk = (BlockIQ2_S*)b;
        signs = blk->Qs[32 + g];
        return IQuantGrids.Iq2s[blk->Qs[g] | ((blk->Qh[g / 4] << (8 - 2 * (g % 4))) & 0x300)];
    }
}

// IQ3_XXS: two 4-element grid entries qs[2g], qs[2g+1]; per 32 a u32 at qs[64 + 4ib] with 4 × 7 sign bits and the
// scale in bits 28-31; dot: 0.25·d·….
internal readonly unsafe struct IQ3XXS : IIQuant
{
    public static DType Type => DType.IQ3_XXS; public static bool Shifted => false; public static float Unit => 0.25f;
    public static float D(byte* b) => (float)((BlockIQ3_XXS*)b)->D;
    private static uint Aux(byte* b, int g) => *(uint*)(((BlockIQ3_XXS*)b)->Qs + 64 + 4 * (g / 4));
    public static int ScaleInt(byte* b, int g) => 2 * (int)(Aux(b, g) >> 28) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        byte* qs = ((BlockIQ3_XXS*)b)->Qs;
        signs = IQuantGrids.KSigns[(int)(Aux(b, g) >> (7 * (g % 4))) & 127];
        return IQuantGrids.Iq3xxs[qs[2 * g]] | (ulong)IQuantGrids.Iq3xxs[qs[2 * g + 1]] << 32;
    }
}

// IQ3_S: 9-bit grid indices qs[2g] | bit 2l of qh[ib] and qs[2g+1] | bit 2l+1 (as bit 8); sign byte signs[g]; a
// 4-bit scale per 32 (low nibble for even ib); dot: d·….
internal readonly unsafe struct IQ3S : IIQuant
{
    public static DType Type => DType.IQ3_S; public static bool Shifted => false; public static float Unit => 1f;
    public static float D(byte* b) => (float)((BlockIQ3_S*)b)->D;
    public static int ScaleInt(byte* b, int g) => 1 + 2 * ((((BlockIQ3_S*)b)->Scales[g / 8] >> (4 * (g / 4 % 2))) & 0xF);
    public static ulong Grid(byte* b, int g, out int signs)
    {
        var blk = (BlockIQ3_S*)b;
        int qh = blk->Qh[g / 4], l = g % 4;
        signs = blk->Signs[g];
        return IQuantGrids.Iq3s[blk->Qs[2 * g] | ((qh << (8 - 2 * l)) & 256)]
             | (ulong)IQuantGrids.Iq3s[blk->Qs[2 * g + 1] | ((qh << (7 - 2 * l)) & 256)] << 32;
    }
}

// IQ1_S: 11-bit index qs[g] | 3 bits (3l) of qh[ib] as bits 8-10; qh[ib] bits 12-14 the scale, bit 15 the shift sign;
// x = d·(2s + 1)·(grid ± 1/8).
internal readonly unsafe struct IQ1S : IIQuant
{
    public static DType Type => DType.IQ1_S; public static bool Shifted => true; public static float Unit => 0.125f;
    public static float D(byte* b) => (float)((BlockIQ1_S*)b)->D;
    public static int ScaleInt(byte* b, int g) => 2 * ((((BlockIQ1_S*)b)->Qh[g / 4] >> 12) & 7) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        int qh = ((BlockIQ1_S*)b)->Qh[g / 4];
        signs = qh >> 15;
        return IQuantGrids.Iq1s[((BlockIQ1_S*)b)->Qs[g] | (((qh >> (3 * (g % 4))) & 7) << 8)];
    }
}

// IQ1_M: index qs[g] | bits 0-2 of the group's qh nibble (qh[g/2], low nibble for even g) as bits 8-10, bit 3 the
// shift sign; 3-bit scale per 16 at bit 6·(ib%2) + 3·(l/2) of u16 scales[ib/2]; d from the scales' top nibbles.
internal readonly unsafe struct IQ1M : IIQuant
{
    public static DType Type => DType.IQ1_M; public static bool Shifted => true; public static float Unit => 0.125f;
    public static float D(byte* b) => Dequantize.IQ1_MScale((BlockIQ1_M*)b);
    public static int ScaleInt(byte* b, int g) => 2 * ((((ushort*)((BlockIQ1_M*)b)->Scales)[g / 8] >> (6 * (g / 4 % 2) + 3 * (g % 4 / 2))) & 7) + 1;
    public static ulong Grid(byte* b, int g, out int signs)
    {
        var blk = (BlockIQ1_M*)b;
        int h = blk->Qh[g / 2] >> (4 * (g % 2));
        signs = (h >> 3) & 1;
        return IQuantGrids.Iq1s[blk->Qs[g] | ((h & 7) << 8)];
    }
}
