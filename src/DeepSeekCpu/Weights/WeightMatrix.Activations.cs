namespace DeepSeekCpu.Weights;

/// <summary>What a matrix's products do with their activations (<see cref="WeightMatrix.Activations"/>).</summary>
internal enum ActivationPrecision
{
    /// <summary>
    /// The format's integer kernels: activations quantized once per call (Q8_0 or Q8_K style) and dotted in integer
    /// arithmetic, as llama.cpp computes these formats. Float formats (F32, F16, BF16, FP8) are float32 either way.
    /// </summary>
    Quantized,

    /// <summary>
    /// float32 activations against the weights decoded in registers, for a model whose reference computes its
    /// quantized weights without rounding the activations (DeepSeek-V4's FP4 experts: WeightMatrix.FromE2M1). The
    /// formats with such a body: <see cref="WeightMatrix.HasFloatActivationBody"/>.
    /// </summary>
    Float32,
}

internal sealed partial class WeightMatrix
{
    /// <summary>
    /// How <c>MatMul</c> treats this matrix's activations; the default is the format's own (quantized for quantized
    /// formats). Set once at load, by the model that knows its reference's arithmetic.
    /// </summary>
    internal ActivationPrecision Activations { get; private set; }

    /// <summary>Formats with a float32-activation GEMV body (Kernels: the nibble-grid formats' float dot).</summary>
    internal static bool HasFloatActivationBody(DType t) => t is DType.MXFP4;

    /// <summary>Computes this matrix's products with float32 activations (<see cref="ActivationPrecision.Float32"/>).</summary>
    internal WeightMatrix WithFloatActivations()
    {
        if (Type.IsQuantized() && !HasFloatActivationBody(Type))
            throw new ArgumentException($"{Name}: {Type} has no float32-activation kernel");
        Activations = ActivationPrecision.Float32;
        return this;
    }
}
