using System.Runtime.CompilerServices;

namespace DeepSeekCpu.Kernels;

/// <summary>Fast scalar half → float for block scales in hot loops.</summary>
internal static class HalfBits
{
    private const float Pow2_112 = 5.192297E+33f; // 2^112 = 2^(127 - 15)

    /// <summary>
    /// Places the 15 magnitude bits at float32 bit 13 and multiplies by 2^112, which rebiases the exponent (15 → 127)
    /// and turns half subnormals into the right normal floats; then restores the sign. Infinities and NaNs become large
    /// finite numbers, which block scales never are. Five integer/float operations instead of the general conversion.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(Half h)
    {
        uint bits = BitConverter.HalfToUInt16Bits(h);
        float mag = BitConverter.UInt32BitsToSingle((bits & 0x7FFF) << 13) * Pow2_112;
        return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(mag) | ((bits & 0x8000) << 16));
    }
}
