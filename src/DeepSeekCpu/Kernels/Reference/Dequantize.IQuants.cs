using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

// The i-quants' specification: ggml/src/ggml-quants.c dequantize_row_iq2_xxs … dequantize_row_iq1_m (llama.cpp
// 3f545be). What each type stores per group of 8 is in IQuantLayouts.cs; the arithmetic below is ggml's, with the
// float operations in ggml's order, so the results are ggml's to the bit (IQuantGgmlTests compares them with outputs
// of ggml's own code).
internal static unsafe partial class Dequantize
{
    /// <summary>IQ1_S/IQ1_M shift of each element (ggml's IQ1S_DELTA and IQ1M_DELTA, both 0.125).</summary>
    public const float IQ1Delta = 0.125f;

    /// <summary>Whole i-quant super-blocks of <paramref name="type"/> (<see cref="Row"/>'s case for them).</summary>
    private static void IQuantRow(DType type, byte* src, Span<float> dst)
    {
        int size = type.BlockBytes();
        for (int i = 0; i < dst.Length / 256; i++, src += size)
        {
            var y = dst.Slice(256 * i, 256);
            switch (type)
            {
                case DType.IQ2_XXS: IQuant<IQ2XXS>(src, y); break;
                case DType.IQ2_XS: IQuant<IQ2XS>(src, y); break;
                case DType.IQ2_S: IQuant<IQ2S>(src, y); break;
                case DType.IQ3_XXS: IQuant<IQ3XXS>(src, y); break;
                case DType.IQ3_S: IQuant<IQ3S>(src, y); break;
                case DType.IQ1_S: IQuant<IQ1S>(src, y); break;
                default: IQuant<IQ1M>(src, y); break;
            }
        }
    }

    // IQ2/IQ3: y = db · grid[j] · (sign bit j ? −1 : 1); IQ1: y = dl · (grid[j] ± IQ1S_DELTA), grid bytes signed.
    private static void IQuant<T>(byte* b, Span<float> y) where T : IIQuant
    {
        for (int g = 0; g < 32; g++)
        {
            ulong grid = T.Grid(b, g, out int signs);
            float db = Kernels.IQuant.Scale<T>(b, g);
            for (int j = 0; j < 8; j++)
                y[8 * g + j] = T.Shifted
                    ? db * ((sbyte)(grid >> (8 * j)) + (signs != 0 ? -IQ1Delta : IQ1Delta))
                    : db * (int)((grid >> (8 * j)) & 0xFF) * ((signs & (1 << j)) != 0 ? -1f : 1f);
        }
    }

    /// <summary>The f16 super-block scale of IQ1_M: the top nibble of each u16 of scales, first u16 lowest
    /// (ggml-quants.c's iq1m_scale_t assembly).</summary>
    internal static float IQ1_MScale(BlockIQ1_M* b)
    {
        ushort* sc = (ushort*)b->Scales;
        int u = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000);
        return (float)BitConverter.UInt16BitsToHalf((ushort)u);
    }
}
