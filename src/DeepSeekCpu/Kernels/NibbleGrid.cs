using System.Runtime.CompilerServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// A 32-element block format whose 16 bytes of 4-bit indices pick int8 levels from a 16-entry grid (element j &lt; 16
/// the low nibble of qs[j], j + 16 the high nibble), times one float scale per block: IQ4_NL (f16 d, kvalues_iq4nl)
/// and MXFP4 (E8M0 e, doubled e2m1 values). The reference and every instruction set's dot take the format as a type
/// argument, so both formats run one body: a table lookup of the nibbles, a signed int8 dot with the Q8_0-style
/// activations, and the block's scale × the activations' scale (ggml_vec_dot_iq4_nl_q8_0 / _mxfp4_q8_0).
/// </summary>
internal unsafe interface INibbleGrid
{
    static abstract int BlockBytes { get; }
    /// <summary>Offset of the 16 index bytes in the block.</summary>
    static abstract int QsOffset { get; }
    /// <summary>The 16 levels an index selects.</summary>
    static abstract ReadOnlySpan<sbyte> Values { get; }
    /// <summary>The block's scale: x = Scale · Values[index].</summary>
    static abstract float Scale(byte* blk);
}

internal readonly unsafe struct IQ4_NLGrid : INibbleGrid
{
    public static int BlockBytes => sizeof(BlockIQ4_NL);
    public static int QsOffset => 2;
    public static ReadOnlySpan<sbyte> Values => IQ4NL.Values;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* blk) => HalfBits.ToFloat(((BlockIQ4_NL*)blk)->D);
}

internal readonly unsafe struct MXFP4Grid : INibbleGrid
{
    public static int BlockBytes => sizeof(BlockMXFP4);
    public static int QsOffset => 1;
    public static ReadOnlySpan<sbyte> Values => Mxfp4.Values;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* blk) => Mxfp4.HalfScale(((BlockMXFP4*)blk)->E);
}
