using DeepSeekCpu.Weights;
using DeepSeekCpu.Kernels.Reference;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Every block format's scalar specification in one table, like ggml's type traits (<c>to_float</c>,
/// <c>from_float_ref</c>, <c>vec_dot</c>): per format the reference code for one block in each direction and for a row's
/// dot with quantized activations. <see cref="Dequantize.Row"/>, <see cref="Quantize.Row"/> and the GEMV's reference
/// dot (<see cref="Gemv.QuantDotReference"/>) all read it, so a new block format is one row here. The float formats
/// and the i-quants (no quantizer; <see cref="IQuantDecode"/>) are not in it.
/// </summary>
internal static unsafe partial class BlockSpecs
{
    /// <summary>One format's reference functions over raw block bytes (<see cref="DTypeInfo.BlockBytes"/> per block).</summary>
    internal readonly struct Spec(delegate*<byte*, Span<float>, void> dequantize, delegate*<float*, byte*, void> quantize, delegate*<byte*, ActQ8*, float> dot)
    {
        /// <summary>One block to its <see cref="DTypeInfo.BlockSize"/> floats.</summary>
        public readonly delegate*<byte*, Span<float>, void> Dequantize = dequantize;
        /// <summary><see cref="DTypeInfo.BlockSize"/> floats to one block.</summary>
        public readonly delegate*<float*, byte*, void> Quantize = quantize;
        /// <summary>A whole row (whole blocks) with the activations quantized as the format's dot expects.</summary>
        public readonly delegate*<byte*, ActQ8*, float> Dot = dot;
    }

    /// <summary>The specification of block format <paramref name="t"/>; all null where it is not in the table.</summary>
    public static Spec For(DType t) => t switch
    {
        DType.Q8_0 => Of<BlockQ8_0>(&Dequantize.Q8_0, &Quantize.Q8_0, &DotReference.Q8_0),
        DType.Q4_0 => Of<BlockQ4_0>(&Dequantize.Q4_0, &Quantize.Q4_0, &DotReference.Q4_0),
        DType.Q4_1 => Of<BlockQ4_1>(&Dequantize.Q4_1, &Quantize.Q4_1, &DotReference.Q4_1),
        DType.Q5_0 => Of<BlockQ5_0>(&Dequantize.Q5_0, &Quantize.Q5_0, &DotReference.Q5_0),
        DType.Q5_1 => Of<BlockQ5_1>(&Dequantize.Q5_1, &Quantize.Q5_1, &DotReference.Q5_1),
        DType.Q8_K => Of<BlockQ8_K>(&Dequantize.Q8_K, &Quantize.Q8_K, &DotReference.Q8_K),
        DType.Q2_K => Of<BlockQ2_K>(&Dequantize.Q2_K, &Quantize.Q2_K, &DotReference.Q2_K),
        DType.Q3_K => Of<BlockQ3_K>(&Dequantize.Q3_K, &Quantize.Q3_K, &DotReference.Q3_K),
        DType.Q4_K => Of<BlockQ4_K>(&Dequantize.Q4_K, &Quantize.Q4_K, &DotReference.Q4_K),
        DType.Q5_K => Of<BlockQ5_K>(&Dequantize.Q5_K, &Quantize.Q5_K, &DotReference.Q5_K),
        DType.Q6_K => Of<BlockQ6_K>(&Dequantize.Q6_K, &Quantize.Q6_K, &DotReference.Q6_K),
        DType.IQ4_NL => Of<BlockIQ4_NL>(&Dequantize.IQ4_NL, &Quantize.IQ4_NL, &DotReference.IQ4_NL),
        DType.IQ4_XS => Of<BlockIQ4_XS>(&Dequantize.IQ4_XS, &Quantize.IQ4_XS, &DotReference.IQ4_XS),
        DType.MXFP4 => Of<BlockMXFP4>(&Dequantize.MXFP4, &Quantize.MXFP4, &DotReference.MXFP4),
        _ => default,
    };

    /// <summary>The typed block functions as functions of the block's bytes (the struct is the bytes' layout).</summary>
    private static Spec Of<T>(delegate*<T*, Span<float>, void> dequantize, delegate*<float*, T*, void> quantize, delegate*<byte*, ActQ8*, float> dot)
        where T : unmanaged =>
        new((delegate*<byte*, Span<float>, void>)dequantize, (delegate*<float*, byte*, void>)quantize, dot);
}
