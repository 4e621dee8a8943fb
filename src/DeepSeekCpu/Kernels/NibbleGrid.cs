using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

// IQ4_NL and MXFP4 store a block of 32 alike: one scale, then 16 bytes of 4-bit indices into a 16-entry int8 grid
// (element j < 16 the low nibble of qs[j], j + 16 the high nibble); x = scale · grid[index]. Their dots are one body per
// instruction set over the grid and scale (a table lookup of the nibbles, a signed int8 dot with the Q8_0-style
// activations, × scale · dy: ggml_vec_dot_iq4_nl_q8_0 and ggml_vec_dot_mxfp4_q8_0).

/// <summary>IQ4_NL: f16 d, then the indices into kvalues_iq4nl.</summary>
internal readonly unsafe struct IQ4_NLGrid : INibbleGrid
{
    public static int BlockBytes => sizeof(BlockIQ4_NL);
    public static ReadOnlySpan<sbyte> Values => IQ4NL.Values;
    public static float Scale(byte* blk) => HalfBits.ToFloat(((BlockIQ4_NL*)blk)->D);
}

/// <summary>MXFP4: the E8M0 byte, then the e2m1 codes (doubled values, half the E8M0 scale).</summary>
internal readonly unsafe struct MXFP4Grid : INibbleGrid
{
    public static int BlockBytes => sizeof(BlockMXFP4);
    public static ReadOnlySpan<sbyte> Values => Mxfp4.Values;
    public static float Scale(byte* blk) => Mxfp4.HalfScale(*blk);
}

/// <summary>A nibble-grid block format; its indices are its last 16 bytes (from BlockBytes − 16).</summary>
internal unsafe interface INibbleGrid
{
    static abstract int BlockBytes { get; }
    /// <summary>The 16 levels an index selects.</summary>
    static abstract ReadOnlySpan<sbyte> Values { get; }
    /// <summary>The block's scale: x = Scale · Values[index].</summary>
    static abstract float Scale(byte* blk);
}
